"""What the browser tests share: finding Chromium (or skipping without it),
keeping the browser off the internet, answering CDN requests with the
pinned Socket.IO client, and driving the chat page.

The tests drive Debian's /usr/bin/chromium through Playwright's Python
package (``executable_path``): no ``playwright install``, no downloaded
browser. The chat server serves the page the Socket.IO client installed at
set-up (chatlab/web/vendor, pinned there); the page loads it from the CDN,
with its integrity hash, only when that copy is missing. Requests to the
CDN are answered here with the installed file, so that hash must match it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import NoReturn

import pytest
from urllib.parse import urlsplit

from playwright.async_api import BrowserContext, Locator, Page, Route, expect

from chatlab.chat_server import CLIENT_FILE

ROOT = Path(__file__).resolve().parent.parent
JS_DIR = ROOT / "tests" / "js"
# The client the chat server serves: chatlab/web/vendor's npm package.
CLIENT_PACKAGE = CLIENT_FILE.parent.parent
NOT_INSTALLED = ("the Socket.IO browser client is not installed: run `make install` "
                 "(npm ci --prefix chatlab/web/vendor)")
LOCAL_HOST = "127.0.0.1"  # where every server of the tests listens
ARTIFACTS = ROOT / "tests" / "artifacts"
CDN_PREFIX = "https://cdn.jsdelivr.net/"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

expect.set_options(timeout=10_000)


def chromium() -> str | None:
    """Debian's Chromium, or one on PATH."""
    if Path("/usr/bin/chromium").exists():
        return "/usr/bin/chromium"
    return shutil.which("chromium")


def missing(what: str) -> NoReturn:
    """Skip when there is no browser and none is required; fail otherwise."""
    if chromium() is None and not os.environ.get("CHATLAB_REQUIRE_BROWSER"):
        pytest.skip(f"{what}; no chromium found (set CHATLAB_REQUIRE_BROWSER=1 to make this fail)")
    pytest.fail(what)


def require_chromium() -> str:
    """Chromium's path; skips (or fails) the test without it."""
    executable = chromium()
    if executable is None:
        missing("the browser tests need chromium (/usr/bin/chromium or on PATH)")
    return executable


def client_js() -> bytes:
    """The Socket.IO browser client that the chat server serves, from the
    pinned npm package installed at set-up."""
    if not CLIENT_FILE.exists():
        missing(NOT_INSTALLED)
    return CLIENT_FILE.read_bytes()


def client_version() -> str:
    if not CLIENT_PACKAGE.exists():
        missing(NOT_INSTALLED)
    return json.loads((CLIENT_PACKAGE / "package.json").read_text())["version"]


async def offline(context: BrowserContext) -> list[str]:
    """Refuse every request of the context to a host other than 127.0.0.1,
    as if there were no internet; returns the list, growing, of
    the URLs refused. Routes added later (route_cdn) are asked first."""
    refused: list[str] = []

    async def answer(route: Route) -> None:
        if urlsplit(route.request.url).hostname == LOCAL_HOST:
            await route.fallback()
        else:
            refused.append(route.request.url)
            await route.abort("internetdisconnected")

    await context.route("**/*", answer)
    return refused


async def route_cdn(context: BrowserContext, *, cdn: str = "serve") -> None:
    """Answer the context's requests to the CDN: the pinned client, the
    installed file (``cdn="serve"``), anything else refused; or refuse them
    all as if offline (``cdn="abort"``)."""
    body, version = client_js(), client_version()
    pinned = f"{CDN_PREFIX}npm/socket.io-client@{version}/dist/socket.io.min.js"

    async def answer(route: Route) -> None:
        if route.request.url == pinned:
            await route.fulfill(
                status=200,
                body=body,
                content_type="application/javascript; charset=utf-8",
                headers={"Access-Control-Allow-Origin": "*"},  # as the CDN sends
            )
        else:
            await route.abort()

    async def refuse(route: Route) -> None:
        await route.abort("internetdisconnected")

    await context.route(f"{CDN_PREFIX}**", answer if cdn == "serve" else refuse)


async def screenshot(page: Page, name: str, *, full_page: bool = True) -> None:
    """Save a screenshot as tests/artifacts/<name>.png."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full_page)


# -- the chat page -------------------------------------------------------------


async def join(page: Page, name: str) -> None:
    """Join the chat through the page's form and wait until the server has
    welcomed this user."""
    await expect(page.locator("#name")).to_be_enabled()
    await page.locator("#name").fill(name)
    await page.get_by_role("button", name="Join").click()
    await expect(page.locator("#state")).to_have_text(f"connected as {name.strip()}")
    await expect(page.locator("#message-form")).to_be_visible()
    await expect(page.locator("#join-form")).to_be_hidden()


async def send(page: Page, text: str, *, press_enter: bool = True) -> None:
    """Send ``text`` from the page, with Enter or the Send button."""
    box = page.locator("#message-input")
    await expect(box).to_be_enabled()
    await box.fill(text)
    if press_enter:
        await box.press("Enter")
    else:
        await page.get_by_role("button", name="Send").click()
    await expect(box).to_have_value("")


def message(page: Page, text: str) -> Locator:
    """The page's message item whose text is exactly ``text``."""
    return page.locator("#messages li.message").filter(
        has=page.locator(".text", has_text=re.compile("^" + re.escape(text) + "$")))


def message_texts(page: Page) -> Locator:
    """The text of every message on the page, in the order shown."""
    return page.locator("#messages li.message .text")


def pending(page: Page) -> Locator:
    """The page's messages still waiting for the server's acknowledgement."""
    return page.locator("#messages li.message.pending")


async def delivered_offsets(page: Page) -> list[int | None]:
    """The offset of every message on the page, in the order shown (None for
    a room or direct message), once none is still sending."""
    await expect(pending(page)).to_have_count(0)
    return await page.locator("#messages li.message").evaluate_all(
        "(items) => items.map((item) => item.dataset.offset === undefined"
        " ? null : Number(item.dataset.offset))")
