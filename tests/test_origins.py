"""The chat's CORS policy: its own page, this machine, and what you allow."""

from __future__ import annotations

import aiohttp
import pytest

from chatlab import ChatServer
from chatlab.hosts import TrustedProxies
from chatlab.origins import origin_policy

pytestmark = pytest.mark.integration


HANDSHAKE = "/socket.io/?EIO=4&transport=polling"


@pytest.mark.parametrize("origin,allowed", [
    ("http://localhost:8888", True),
    ("http://127.0.0.1:5000", True),
    ("https://localhost", True),
    ("http://[::1]:8000", True),
    ("https://example.org", False),
    ("http://localhost.example.org", False),
    ("http://127.0.0.1.example.org:80", False),
    ("null", False),
    ("http://localhost:notaport", False),
])
def test_the_default_policy(origin, allowed):
    check = origin_policy()
    assert check(origin, {"HTTP_HOST": "127.0.0.1:5000"}) is allowed


def test_the_page_s_own_origin_is_allowed_behind_a_proxy():
    check = origin_policy()
    proxied = {"HTTP_HOST": "hub.example.org", "wsgi.url_scheme": "http"}
    assert check("https://hub.example.org", proxied)
    assert check("http://hub.example.org", proxied)
    assert not check("https://evil.example.org", proxied)


def test_a_forwarded_host_counts_only_from_a_trusted_proxy():
    # Anyone can send X-Forwarded-Host (a rebinding page too); with no
    # trusted proxy, or no peer known to be one, the Host header decides.
    forwarded = {"HTTP_HOST": "127.0.0.1:5000", "HTTP_X_FORWARDED_HOST": "lab.test:8888"}
    assert not origin_policy()("http://lab.test:8888", forwarded)
    trusting = origin_policy(trusted_proxies=TrustedProxies(["127.0.0.1"]))
    assert not trusting("http://lab.test:8888", forwarded)
    assert trusting("http://127.0.0.1:5000", forwarded)  # still a local page
    # Over a real connection from a trusted proxy: tests/test_hosts.py.


def test_extra_origins_and_star():
    check = origin_policy(["https://example.org/"])
    assert check("https://example.org", {})
    assert not check("https://other.org", {})
    assert origin_policy(["https://example.org", "*"]) == "*"


async def test_the_server_refuses_a_foreign_origin_and_answers_an_allowed_one():
    chat = ChatServer(cors_origins=["https://friend.example"])
    server = await chat.serve(name="cors")
    try:
        async with aiohttp.ClientSession() as session:
            for origin, status in (("https://evil.example", 400),
                                   ("https://friend.example", 200),
                                   ("http://localhost:1234", 200)):
                response = await session.get(server.url + HANDSHAKE, headers={"Origin": origin})
                assert response.status == status, origin
                if status == 200:
                    assert response.headers["Access-Control-Allow-Origin"] == origin
    finally:
        await server.stop()
