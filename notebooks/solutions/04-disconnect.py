"""Lesson 04 · Disconnect: a solution to the exercise.

Run it on its own (`python notebooks/solutions/04-disconnect.py`) to see the
check pass, or read it beside the lesson.
"""

import socketio


def make_users_server():
    sio = socketio.AsyncServer(async_mode="aiohttp")
    users = {}  # connection id -> user name, in the order they joined

    @sio.event
    async def adduser(sid, name=None):
        users[sid] = name
        await sio.emit("users", list(users.values()))

    @sio.event
    async def disconnect(sid, reason):
        # By connection id: two users may share a name, and a connection
        # that never sent adduser is not on the list at all.
        if users.pop(sid, None) is not None:
            await sio.emit("users", list(users.values()))

    return sio


if __name__ == "__main__":
    import asyncio

    from chatlab.exercises.disconnect import check_users_server

    asyncio.run(check_users_server(make_users_server))
