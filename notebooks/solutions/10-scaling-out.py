"""Lesson 10 · Scaling out: a solution to the exercise.

Run it on its own (`python notebooks/solutions/10-scaling-out.py`) to see the
check pass (it starts its own redis-server), or read it beside the lesson.
"""

import socketio


def make_node(redis_url):
    # Every emit goes to this node's own clients and, through Redis, to the
    # clients of every other node created with the same URL.
    manager = socketio.AsyncRedisManager(redis_url)
    sio = socketio.AsyncServer(async_mode="aiohttp", client_manager=manager)

    @sio.event
    async def message(sid, text):
        await sio.emit("message", text)  # everyone, on every node

    return sio


if __name__ == "__main__":
    import asyncio

    from chatlab.exercises.scaling import check_node

    asyncio.run(check_node(make_node))
