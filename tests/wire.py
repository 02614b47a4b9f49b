"""Speaking Engine.IO/Socket.IO over a bare aiohttp websocket, for tests
that need to see, or withhold, what a real client library would hide."""

from __future__ import annotations

from typing import Any

import aiohttp


async def connect_websocket(http: aiohttp.ClientSession, base_url: str,
                            **options: Any) -> aiohttp.ClientWebSocketResponse:
    """A websocket to ``base_url``'s Socket.IO server, through the
    Engine.IO handshake and connected to the namespace "/". Use it as
    ``async with await connect_websocket(...) as ws:`` to close it."""
    url = base_url + "/socket.io/?EIO=4&transport=websocket"
    ws = await http.ws_connect(url, **options)
    assert (await ws.receive_str(timeout=5)).startswith("0{")  # Engine.IO open
    await ws.send_str("40")  # Socket.IO connect to "/"
    assert (await ws.receive_str(timeout=5)).startswith("40{")
    return ws


def from_address(address: str) -> aiohttp.ClientSession:
    """An aiohttp client whose connections come from ``address`` (any of
    127.0.0.0/8 is this machine), to be told apart from 127.0.0.1."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(address, 0)))
