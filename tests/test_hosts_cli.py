"""``chatlab serve --allow-host`` and ``--trusted-proxy``, run as a real
process: a rebinding page is refused, a named host and a trusted proxy's
forwarded host are answered."""

from __future__ import annotations

import aiohttp
import pytest

import test_cli
from test_cli import HANDSHAKE, get

serve_cli = test_cli.serve_cli  # the fixture that starts `chatlab serve --port 0`

pytestmark = pytest.mark.e2e

EVIL = "rebind.evil.example"


def as_browser(host: str, port: int) -> dict[str, str]:
    return {"Host": f"{host}:{port}", "Origin": f"http://{host}:{port}"}


async def test_allow_host_answers_that_name_and_no_other(serve_cli) -> None:
    served = await serve_cli("--allow-host", "classroom.example", "--allow-host", "teacher")
    port = int(served.url.rsplit(":", 1)[1].strip("/"))
    for host in ("classroom.example", "teacher", "127.0.0.1"):
        status, headers, body = await get(served.url + HANDSHAKE, **as_browser(host, port))
        assert status == 200, (host, body)
        assert headers["Access-Control-Allow-Origin"] == f"http://{host}:{port}"
    status, headers, body = await get(served.url + HANDSHAKE, **as_browser(EVIL, port))
    assert status == 403
    assert "Access-Control-Allow-Origin" not in headers
    assert f"chatlab serve --allow-host {EVIL}" in body
    assert await served.stop() == 0


async def test_without_allow_host_a_rebinding_page_is_refused(serve_cli) -> None:
    served = await serve_cli()
    port = int(served.url.rsplit(":", 1)[1].strip("/"))
    for path in ("", HANDSHAKE):
        status, _, _ = await get(served.url + path, **as_browser(EVIL, port))
        assert status == 403, path
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(served.url + "socket.io/?EIO=4&transport=websocket",
                                     headers=as_browser(EVIL, port))
    assert refused.value.status == 403
    assert await served.stop() == 0


async def test_trusted_proxy_s_forwarded_host_is_the_page_s(serve_cli) -> None:
    served = await serve_cli("--trusted-proxy", "127.0.0.1", "--allow-host", "chat.example.org")
    proxied = {"X-Forwarded-Host": "chat.example.org", "Origin": "https://chat.example.org"}
    status, headers, _ = await get(served.url + HANDSHAKE, **proxied)
    assert status == 200
    assert headers["Access-Control-Allow-Origin"] == "https://chat.example.org"
    status, _, _ = await get(served.url + HANDSHAKE, **{**proxied, "X-Forwarded-Host": EVIL})
    assert status == 403
    assert await served.stop() == 0
