"""Lesson 03 · Rooms: a solution to the exercise.

Run it on its own (`python notebooks/solutions/03-rooms.py`) to see the
check pass, or read it beside the lesson.
"""

import socketio

PREFIX = "room:"  # chat rooms live under this prefix, apart from connection ids


def make_rooms_server():
    sio = socketio.AsyncServer(async_mode="aiohttp")

    def chat_rooms(sid):
        """The chat rooms `sid` is in: without the prefix, without its own id."""
        return sorted(room[len(PREFIX):] for room in sio.rooms(sid) if room.startswith(PREFIX))

    @sio.event
    async def join(sid, room=None):
        await sio.enter_room(sid, PREFIX + room)
        return chat_rooms(sid)

    @sio.event
    async def say(sid, data=None):
        said = {"room": data["room"], "text": data["text"], "from": sid}
        await sio.emit("said", said, room=PREFIX + data["room"], skip_sid=sid)

    return sio


if __name__ == "__main__":
    import asyncio

    from chatlab.exercises.rooms import check_rooms_server

    asyncio.run(check_rooms_server(make_rooms_server))
