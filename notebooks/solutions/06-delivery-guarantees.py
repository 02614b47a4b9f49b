"""Lesson 06 · Delivery guarantees: a solution to the exercise.

Run it on its own (`python notebooks/solutions/06-delivery-guarantees.py`) to
see the check pass, or read it beside the lesson.
"""

import socketio


def make_reliable_server():
    sio = socketio.AsyncServer(async_mode="aiohttp")
    texts = []    # the stored messages: texts[0] has offset 1, texts[1] offset 2, …
    offsets = {}  # message id -> the offset it was stored under

    @sio.event
    async def message(sid, text, message_id=None):
        if message_id is not None and message_id in offsets:
            # A retry: stored already, so only tell the sender where it is.
            return {"ok": True, "offset": offsets[message_id]}
        texts.append(text)
        offset = len(texts)
        if message_id is not None:
            offsets[message_id] = offset
        await sio.emit("message", {"message": text, "offset": offset})
        return {"ok": True, "offset": offset}

    async def replay(sid, after):
        # Runs once connect has returned and the connection is accepted.
        for offset in range(after + 1, len(texts) + 1):
            await sio.emit("message", {"message": texts[offset - 1], "offset": offset},
                           to=sid)

    @sio.event
    async def connect(sid, environ, auth):
        after = (auth or {}).get("serverOffset", 0)
        sio.start_background_task(replay, sid, after)

    return sio


if __name__ == "__main__":
    import asyncio

    from chatlab.exercises.delivery import check_reliable_server

    asyncio.run(check_reliable_server(make_reliable_server))
