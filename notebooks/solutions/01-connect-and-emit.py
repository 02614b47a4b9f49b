"""Lesson 01 · Connect and emit: a solution to the exercise.

Run it on its own (`python notebooks/solutions/01-connect-and-emit.py`) to
see the check pass, or read it beside the lesson.
"""

import socketio


def make_badge_server():
    sio = socketio.AsyncServer(async_mode="aiohttp")

    @sio.event
    async def connect(sid, environ, auth):
        name = auth.get("name") if isinstance(auth, dict) else None
        if not name:
            return False  # no name, no entry
        await sio.save_session(sid, {"name": name})
        await sio.emit("welcome", f"Welcome, {name}!", to=sid)

    @sio.event
    async def whoami(sid, data=None):
        session = await sio.get_session(sid)
        return session["name"]

    return sio


if __name__ == "__main__":
    import asyncio

    from chatlab.exercises.connect_and_emit import check_name_badge

    asyncio.run(check_name_badge(make_badge_server))
