"""The chat page's link suits where the notebook runs."""

import pytest

from chatlab import ChatServer
from chatlab.links import page_link

pytestmark = pytest.mark.integration


async def test_locally_the_link_goes_straight_to_the_server():
    server = await ChatServer().serve(name="links-local")
    try:
        link = page_link(server, environ={})
        assert str(link) == f"http://127.0.0.1:{server.port}/"
        assert repr(link) == f"Open the chat page: http://127.0.0.1:{server.port}/"
    finally:
        await server.stop()


async def test_on_a_hub_the_link_goes_through_its_proxy():
    server = await ChatServer().serve(name="links-hub")
    try:
        for prefix in ("/user/ann/", "/user/ann", "user/ann/"):
            link = page_link(server, environ={"JUPYTERHUB_SERVICE_PREFIX": prefix})
            assert str(link) == f"/user/ann/proxy/{server.port}/"
        assert str(page_link(server, {"JUPYTERHUB_SERVICE_PREFIX": "/"})) == \
            f"/proxy/{server.port}/"
    finally:
        await server.stop()


def test_the_link_is_escaped_in_html():
    from chatlab.links import PageLink
    assert '<a href="/x?a=1&amp;b=&quot;2&quot;"' in PageLink('/x?a=1&b="2"')._repr_html_()
