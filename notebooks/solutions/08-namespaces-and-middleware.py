"""A solution to the exercise of lesson 08 · Namespaces and middleware.

Run it in the lesson, or check it from a script:

    import asyncio
    from chatlab.exercises.namespaces import check_admin_namespace
    asyncio.run(check_admin_namespace(make_moderated_server_solution))
"""

import socketio

ADMIN_TOKEN = "open-sesame"


class Chat(socketio.AsyncNamespace):
    """The lesson's /chat: each client brings a name in ``auth``."""

    def __init__(self, namespace):
        super().__init__(namespace)
        self.users = {}  # name -> the sid of that user's /chat connection

    async def on_connect(self, sid, environ, auth):
        name = (auth or {}).get("name")
        if not name:
            raise socketio.exceptions.ConnectionRefusedError("a name is required")
        self.users[name] = sid
        await self.save_session(sid, {"name": name})

    async def on_disconnect(self, sid, reason):
        name = (await self.get_session(sid))["name"]
        if self.users.get(name) == sid:
            del self.users[name]

    async def on_message(self, sid, text):
        name = (await self.get_session(sid))["name"]
        await self.emit("message", {"name": name, "text": text})


def make_moderated_server_solution():
    sio = socketio.AsyncServer(async_mode="aiohttp")
    chat = Chat("/chat")
    sio.register_namespace(chat)

    class Admin(socketio.AsyncNamespace):
        async def on_connect(self, sid, environ, auth):
            if (auth or {}).get("token") != ADMIN_TOKEN:
                raise socketio.exceptions.ConnectionRefusedError("admins only: wrong token")

        async def on_kick(self, sid, name):
            chat_sid = chat.users.get(name)
            if chat_sid is None:
                return False
            await chat.disconnect(chat_sid)  # that sid, in /chat
            return True

    sio.register_namespace(Admin("/admin"))
    return sio
