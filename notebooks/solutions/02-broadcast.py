"""Lesson 02 · Broadcast: a solution to the exercise.

Run it on its own (`python notebooks/solutions/02-broadcast.py`) to see the
check pass, or read it beside the lesson.
"""

import socketio


def make_arrivals_server():
    sio = socketio.AsyncServer(async_mode="aiohttp")

    @sio.event
    async def connect(sid, environ, auth):
        name = (auth or {}).get("name", "someone")
        await sio.save_session(sid, {"name": name})
        await sio.emit("arrived", name, skip_sid=sid)  # everyone but the newcomer

    @sio.event
    async def shout(sid, text=None):
        session = await sio.get_session(sid)
        await sio.emit("shouted", {"user": session["name"], "text": text})  # everyone

    return sio


if __name__ == "__main__":
    import asyncio

    from chatlab.exercises.broadcast import check_arrivals_board

    asyncio.run(check_arrivals_board(make_arrivals_server))
