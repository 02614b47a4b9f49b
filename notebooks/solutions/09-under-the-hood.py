"""A solution to lesson 09's exercise: Socket.IO spoken by hand, with
aiohttp's websocket client and nothing else."""

import asyncio
import json

import aiohttp


def websocket_url(url):
    # The Engine.IO endpoint, asked for a websocket straight away.
    return url.replace("http://", "ws://", 1) + "/socket.io/?EIO=4&transport=websocket"


async def speak(url, name, text):
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(websocket_url(url)) as ws:
            await ws.receive_str()                     # 0{"sid":…}: Engine.IO is open
            await ws.send_str("40")                    # CONNECT to the namespace /
            async for frame in ws:
                packet = frame.data
                if packet == "2":                      # a ping: answer it
                    await ws.send_str("3")
                elif packet.startswith("40"):          # connected: join, then speak
                    await ws.send_str("42" + json.dumps(["adduser", name]))
                    await ws.send_str("42" + json.dumps(["message", text]))
                elif packet.startswith("42"):
                    event, *args = json.loads(packet[2:])
                    if event == "message" and args[0].get("user") == name:
                        return                         # our message came back: done
                elif packet.startswith("44"):          # CONNECT_ERROR
                    raise RuntimeError(f"the server refused: {packet[2:]}")


async def stay(url, seconds):
    # The optional part: answer every ping for as long as we stay.
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(websocket_url(url)) as ws:
            await ws.receive_str()
            await ws.send_str("40")
            loop = asyncio.get_running_loop()
            end = loop.time() + seconds
            while (left := end - loop.time()) > 0:
                try:
                    frame = await asyncio.wait_for(ws.receive(), left)
                except asyncio.TimeoutError:
                    break
                if frame.type != aiohttp.WSMsgType.TEXT:
                    break                              # the server closed it
                if frame.data == "2":
                    await ws.send_str("3")
