"""The chat as its own app, on ASGI: run it with uvicorn.

    uvicorn asgi_app:app --port 8000

then open http://127.0.0.1:8000/mine/ (Ctrl+C stops it).
"""
import socketio

from chatlab.chat_server import CLIENT_FILE  # the Socket.IO browser client's file

sio = socketio.AsyncServer(async_mode="asgi")
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


# The page's folder at /mine/ and the client where the page looks for it.
app = socketio.ASGIApp(sio, static_files={
    "/mine/": "page/",
    "/static/vendor/socket.io.min.js": str(CLIENT_FILE),
})
