"""Lesson 05 · Build the chat: a solution to the exercise.

Run it on its own (`python notebooks/solutions/05-build-the-chat.py`) to see
the check pass, or read it beside the lesson.
"""

import socketio

LIMIT = 200  # the longest message accepted, in characters


def make_checked_chat():
    sio = socketio.AsyncServer(async_mode="aiohttp")
    users = {}  # connection id -> user name

    @sio.event
    async def adduser(sid, name=None):
        users[sid] = name
        await sio.emit("users", list(users.values()))

    def problem(sid, text):
        """Why the message must be refused, or None when it is fine."""
        if sid not in users:
            return "send adduser with your name before sending a message"
        if not isinstance(text, str):
            return "the message must be a string"
        if not text.strip():
            return "the message must not be empty"
        if len(text) > LIMIT:
            return f"the message is {len(text)} characters long; the limit is {LIMIT}"
        return None

    @sio.event
    async def message(sid, text=None):
        reason = problem(sid, text)
        if reason is not None:
            await sio.emit("error", {"event": "message", "reason": reason}, to=sid)
            return
        await sio.emit("message", {"message": text, "user": users[sid], "id": sid})

    return sio


if __name__ == "__main__":
    import asyncio

    from chatlab.exercises.build_the_chat import check_message_rules

    asyncio.run(check_message_rules(make_checked_chat))
