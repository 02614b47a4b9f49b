"""The chat as its own app, on aiohttp: run it with Python.

    python aiohttp_app.py --port 8000

then open http://127.0.0.1:8000/mine/ (Ctrl+C stops it).
"""
import argparse

import socketio
from aiohttp import web

from chatlab.chat_server import CLIENT_FILE  # the Socket.IO browser client's file

sio = socketio.AsyncServer(async_mode="aiohttp")
users = {}  # connection id -> user name


@sio.event
async def adduser(sid, name):
    if not isinstance(name, str) or not name.strip() or name in users.values():
        return {"ok": False, "reason": "choose another name"}
    users[sid] = name
    await sio.emit("users", list(users.values()))
    await sio.emit("private", {"id": sid, "name": name, "msg": f"Welcome, {name}!"}, to=sid)
    return {"ok": True, "id": sid, "name": name}


@sio.event
async def message(sid, text, message_id=None):
    if sid not in users or not isinstance(text, str) or not text.strip():
        return {"ok": False, "reason": "join first, and send some text"}
    await sio.emit("message", {"message": text, "user": users[sid], "id": sid})
    return {"ok": True}


@sio.event
async def disconnect(sid, reason=None):
    if users.pop(sid, None) is not None:
        await sio.emit("users", list(users.values()))


async def index(request):
    return web.FileResponse("page/index.html")


async def client(request):
    return web.FileResponse(CLIENT_FILE)


app = web.Application()
sio.attach(app)  # Socket.IO at /socket.io/
app.router.add_get("/mine/", index)
app.router.add_static("/mine/", "page")
app.router.add_get("/static/vendor/socket.io.min.js", client)

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="the chat, on aiohttp")
    parser.add_argument("--port", type=int, default=8000)
    # run_app stops cleanly on Ctrl+C (SIGINT) and on SIGTERM.
    web.run_app(app, host="127.0.0.1", port=parser.parse_args().port)
