"""What the nginx tests share: ``chatlab serve`` nodes as processes, and a
real nginx in front of them, run from deploy/nginx.conf.

nginx runs as an ordinary process of the test (``daemon off;``), without
root and without the system's files: a prefix directory of its own in a
temporary directory holds the generated nginx.conf, the pid file, the
error and access logs and the temporary files. The generated configuration
wraps deploy/nginx.conf, the one shipped, with only its addresses replaced
(the nodes' ports, and a free port on 127.0.0.1 to listen on), so the tests
check the configuration users copy. The wrapper adds what a test needs to
see: every response says which node served it (``X-Chatlab-Node``) and the
access log records each request's node and status.

Without nginx (``/usr/sbin/nginx`` or on PATH) these tests skip, or fail
when CHATLAB_REQUIRE_NGINX is set, as in CI.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn, Sequence

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEPLOY_CONF = ROOT / "deploy" / "nginx.conf"
LOCAL_HOST = "127.0.0.1"
START_TIMEOUT = 15.0  # seconds for a node to print its URL, or nginx to listen
STOP_TIMEOUT = 5.0  # seconds for a process to exit after a signal
URL_LINE = re.compile(r"^chatlab chat server on (http://127\.0\.0\.1:(\d+)/) \(Ctrl-C to stop\)$")
REQUIRE_VARIABLE = "CHATLAB_REQUIRE_NGINX"
NODE_HEADER = "X-Chatlab-Node"


def nginx_executable() -> str | None:
    """Debian's nginx (in /usr/sbin, often not on a user's PATH), or one on PATH."""
    for candidate in ("/usr/sbin/nginx", shutil.which("nginx")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def missing(what: str) -> NoReturn:
    """Skip when nginx is not required here; fail when it is (CI)."""
    if os.environ.get(REQUIRE_VARIABLE):
        pytest.fail(f"{what} ({REQUIRE_VARIABLE} is set)")
    pytest.skip(f"{what}; install it (apt-get install nginx, or `make test` as root "
                f"does) or set {REQUIRE_VARIABLE}=1 to make this fail")


def require_nginx() -> str:
    """nginx's path; skips (or fails) the test without it."""
    executable = nginx_executable()
    if executable is None:
        missing("the nginx tests need nginx (/usr/sbin/nginx or on PATH)")
    return executable


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago (nginx cannot be told
    to pick one and say which: a taken one is retried, see start_nginx)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOCAL_HOST, 0))
        return probe.getsockname()[1]


def _stop(process: subprocess.Popen, signum: int = signal.SIGTERM) -> int:
    if process.poll() is None:
        process.send_signal(signum)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


# -- chatlab serve nodes ------------------------------------------------------

@dataclass
class Node:
    """One running ``python -m chatlab serve --port 0`` and its URL."""

    process: subprocess.Popen
    url: str
    port: int

    @property
    def address(self) -> str:
        return f"{LOCAL_HOST}:{self.port}"

    def stop(self, signum: int = signal.SIGTERM) -> int:
        return _stop(self.process, signum)


def start_node(*extra: str) -> Node:
    """``python -m chatlab serve --port 0 EXTRA...`` from this checkout, once
    it has printed its URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "chatlab", "serve", "--port", "0", *extra],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stderr is not None
    ready, _, _ = select.select([process.stdout], [], [], START_TIMEOUT)
    line = process.stdout.readline().rstrip("\n") if ready else ""
    match = URL_LINE.match(line)
    if match is None:
        _stop(process, signal.SIGKILL)
        error = process.stderr.read()
        pytest.fail(f"chatlab serve {' '.join(extra)} did not start: first line {line!r}, "
                    f"stderr {error!r}")
    return Node(process, match.group(1), int(match.group(2)))


# -- nginx ----------------------------------------------------------------------

# What a test adds around deploy/nginx.conf: the main context (no daemon,
# everything in the prefix directory), and in http a log of which node
# served each request. ``user`` only as root, where workers would otherwise
# become nobody, who cannot enter the test's temporary directory.
WRAPPER = """\
daemon off;
master_process on;
worker_processes 1;
{user}
pid {prefix}/nginx.pid;
error_log {prefix}/error.log notice;

events {{
    worker_connections 512;
}}

http {{
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;

    log_format nodes '$remote_addr "$request" $status $upstream_addr';
    access_log {prefix}/access.log nodes;
    add_header {node_header} $upstream_addr always;

{site}
}}
"""

UPSTREAM_SERVERS = re.compile(r"^(\s*)server\s+[0-9.]+:\d+[^;]*;\n", re.MULTILINE)
LISTEN = re.compile(r"^(\s*)listen\s+80;$", re.MULTILINE)
STICKY = re.compile(r"^\s*hash \$remote_addr consistent;\n", re.MULTILINE)


def site_config(nodes: Sequence[str], port: int, sticky: bool = True) -> str:
    """deploy/nginx.conf with the nodes ``HOST:PORT`` in its upstream and
    listening on 127.0.0.1:``port``; ``sticky=False`` drops the hash, so
    nginx takes the nodes in turn (round robin)."""
    text = DEPLOY_CONF.read_text()
    servers = UPSTREAM_SERVERS.findall(text)
    assert servers, "deploy/nginx.conf has no `server HOST:PORT ...;` lines in its upstream"
    indent = servers[0]
    lines = "".join(f"{indent}server {node} max_fails=1 fail_timeout=10s;\n" for node in nodes)
    first = iter([lines])
    # The first server line becomes the nodes' lines, the others go.
    text = UPSTREAM_SERVERS.sub(lambda _: next(first, ""), text)
    text, listens = LISTEN.subn(rf"\1listen {LOCAL_HOST}:{port};", text)
    assert listens == 1, "deploy/nginx.conf should have one `listen 80;`"
    if not sticky:
        text, hashes = STICKY.subn("", text)
        assert hashes == 1, "deploy/nginx.conf should balance with `hash $remote_addr consistent;`"
    return text


@dataclass
class Nginx:
    """A running nginx and the directory it keeps everything in."""

    process: subprocess.Popen
    prefix: Path
    port: int

    @property
    def url(self) -> str:
        return f"http://{LOCAL_HOST}:{self.port}/"

    def access_log(self) -> list[tuple[str, str, int, str]]:
        """(client, request line, status, node) of each request logged so far."""
        entries = []
        pattern = re.compile(r'^(\S+) "([^"]*)" (\d+) (.*)$')
        for line in (self.prefix / "access.log").read_text().splitlines():
            match = pattern.match(line)
            if match:
                entries.append((match[1], match[2], int(match[3]), match[4]))
        return entries

    def error_log(self) -> str:
        path = self.prefix / "error.log"
        return path.read_text() if path.exists() else ""

    def stop(self) -> int:
        # SIGTERM: a fast shutdown, open websockets closed at once.
        return _stop(self.process, signal.SIGTERM)


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        return probe.connect_ex((LOCAL_HOST, port)) == 0


def start_nginx(nodes: Sequence[str], directory: Path, sticky: bool = True) -> Nginx:
    """nginx on a free port of 127.0.0.1 in front of ``nodes`` (``HOST:PORT``
    each), configured from deploy/nginx.conf in ``directory``, once it
    accepts connections."""
    executable = require_nginx()
    directory.mkdir(parents=True, exist_ok=True)
    user = "user root;" if os.geteuid() == 0 else ""
    for attempt in range(3):  # the free port may be taken before nginx binds it
        port = free_port()
        config = WRAPPER.format(user=user, prefix=directory, node_header=NODE_HEADER,
                                site=site_config(nodes, port, sticky))
        (directory / "nginx.conf").write_text(config)
        process = subprocess.Popen(
            [executable, "-p", f"{directory}/", "-e", f"{directory}/error.log",
             "-c", f"{directory}/nginx.conf"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + START_TIMEOUT
        while process.poll() is None and time.monotonic() < deadline:
            if _listening(port):
                return Nginx(process, directory, port)
            time.sleep(0.02)  # polling the condition "nginx accepts"
        _stop(process)
        output = process.stdout.read() if process.stdout else ""
        log = (directory / "error.log").read_text() if (directory / "error.log").exists() else ""
        if "Address already in use" not in output + log:
            break
    pytest.fail(f"nginx did not start: {output}\n{log}")

