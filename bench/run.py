"""chatlab's benchmark: the chatlab chat server against the Node.js reference.

    .venv/bin/python bench/run.py              # the full run (about 10 minutes, then 3 of hostile clients)
    .venv/bin/python bench/run.py --quick      # a smoke run: tiny sizes, 1 round
    .venv/bin/python bench/run.py --hostile    # only the hostile clients (bench/hostile.py)
    .venv/bin/python bench/run.py --cluster    # only the cluster scenarios (two nodes on one Redis)

Installs the pinned npm packages (``npm ci --prefix bench`` and
``--prefix tests/js``) if they are missing, then for each round and each
scenario starts a fresh chatlab server and a fresh Node.js server (the tests'
reference, ``tests/js/chat-server.mjs --no-delivery``), one after the
other (A B A B ...), runs the load generator (``bench/loadgen.mjs``) against
each, and kills the server. The load generator reads the server's CPU time
and memory from /proc at the start and end of the measured phase. After the
rounds, a table gives the median of each figure, the chatlab/Node ratio and
the issue's target. Then the cluster scenarios (``--no-cluster`` skips
them, ``--cluster`` runs only them): in each round, a fresh redis-server
and two chatlab nodes on it (``chatlab_server.py --redis URL``), then a
fresh redis-server and two Node.js nodes with socket.io's Redis adapter
(``bench/cluster_node.mjs``), the load generator's clients spread over the
two nodes, and the CPU of both nodes and of Redis read from /proc; a table
of their own. Then the hostile clients of ``bench/hostile.py`` (one
round; ``--no-hostile`` skips them, ``--hostile`` runs only them), with
a table of their own. Everything runs on 127.0.0.1; every wait is bounded.

This is a measurement, not a test: it exits 0 whether or not the targets are
met (1 only if a scenario could not run at all).
"""

from __future__ import annotations

import argparse
import atexit
import datetime
import json
import math
import os
import platform
import queue
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
LOADGEN = BENCH / "loadgen.mjs"
# The tests' reference server, on tests/js's socket.io; run with
# --no-delivery, the base protocol only (docs/benchmarks.md says why).
NODE_SERVER = ROOT / "tests" / "js" / "chat-server.mjs"
# One node of the Node.js reference as a cluster: bench's socket.io with
# @socket.io/redis-adapter.
CLUSTER_NODE = BENCH / "cluster_node.mjs"
# The npm packages in use, each with the directory whose package-lock.json pins it.
NPM_PACKAGES = [("socket.io", NODE_SERVER.parent), ("socket.io-client", BENCH), ("ws", BENCH),
                ("socket.io", BENCH), ("@socket.io/redis-adapter", BENCH), ("redis", BENCH)]
CHATLAB_SERVER = BENCH / "chatlab_server.py"
READY = re.compile(r"listening on (\d+)|http://127\.0\.0\.1:(\d+)")
REDIS_READY = re.compile(r"Ready to accept connections")
CLK_TCK = os.sysconf("SC_CLK_TCK")

# ------------------------------------------------------------- scenarios


@dataclass(frozen=True)
class Scenario:
    name: str
    kind: str  # the load generator's scenario
    full: tuple[str, ...]
    quick: tuple[str, ...]
    timeout: float  # seconds for the whole load generator run (full size)
    # chatlab's server keeps its messages in a fresh SQLite file (--db),
    # made for each server started; the Node.js reference stores nothing.
    db: bool = False


SCENARIOS = [
    Scenario("echo-1", "echo", ("--listeners", "1", "--messages", "1000", "--warmup", "100"),
             ("--listeners", "1", "--messages", "50", "--warmup", "5"), 60),
    Scenario("echo-10", "echo", ("--listeners", "10", "--messages", "1000", "--warmup", "100"),
             ("--listeners", "10", "--messages", "50", "--warmup", "5"), 60),
    # The same echo, ten times as long: both servers warm, a steadier p50.
    Scenario("echo-1-long", "echo",
             ("--listeners", "1", "--messages", "10000", "--warmup", "500"),
             ("--listeners", "1", "--messages", "100", "--warmup", "10"), 120),
    Scenario("echo-1-db", "echo", ("--listeners", "1", "--messages", "1000", "--warmup", "100"),
             ("--listeners", "1", "--messages", "50", "--warmup", "5"), 60, db=True),
    Scenario("echo-10-db", "echo", ("--listeners", "10", "--messages", "1000", "--warmup", "100"),
             ("--listeners", "10", "--messages", "50", "--warmup", "5"), 60, db=True),
    Scenario("echo-100", "echo", ("--listeners", "100", "--messages", "400", "--warmup", "40"),
             ("--listeners", "100", "--messages", "50", "--warmup", "5"), 90),
    Scenario("fanout", "fanout",
             ("--clients", "100", "--senders", "10", "--window", "8", "--duration", "10"),
             ("--clients", "20", "--senders", "4", "--window", "4", "--duration", "2"), 120),
    Scenario("fanout-db", "fanout",
             ("--clients", "100", "--senders", "10", "--window", "8", "--duration", "10"),
             ("--clients", "20", "--senders", "4", "--window", "4", "--duration", "2"), 120,
             db=True),
    Scenario("churn", "churn", ("--total", "1000", "--concurrency", "50"),
             ("--total", "100", "--concurrency", "10"), 120),
    Scenario("online", "online", ("--users", "1000", "--concurrency", "50"),
             ("--users", "100", "--concurrency", "10"), 0),  # timeout: --online-limit
]
SERVERS = ("chatlab", "node")

# Two nodes of one chat on one Redis (see --cluster). The load generator
# puts the senders on node 1 with half of the clients, and the other half
# on node 2 (fan-out); the echo's sender on node 1 and its listener on node 2.
CLUSTER_SCENARIOS = [
    Scenario("cluster-echo", "echo",
             ("--listeners", "1", "--messages", "1000", "--warmup", "100"),
             ("--listeners", "1", "--messages", "50", "--warmup", "5"), 60),
    Scenario("cluster-fanout", "fanout",
             ("--clients", "100", "--senders", "10", "--window", "8", "--duration", "10"),
             ("--clients", "20", "--senders", "4", "--window", "4", "--duration", "2"), 120),
]
CLUSTER_PARTS = ("node1", "node2", "redis")

# ----------------------------------------------------------- the figures


def _get(*path: str) -> Callable[[dict[str, Any]], float | None]:
    def get(result: dict[str, Any]) -> float | None:
        value: Any = result
        for key in path:
            if not isinstance(value, dict) or value.get(key) is None:
                return None
            value = value[key]
        return float(value)
    return get


def _online_time(result: dict[str, Any]) -> float | None:
    # A run stopped by the time limit took longer than the limit: infinity,
    # so that the median says so when most runs did.
    if result.get("online_s") is None:
        return None
    return result["online_s"] if result.get("complete") else math.inf


@dataclass(frozen=True)
class Figure:
    scenario: str
    label: str
    get: Callable[[dict[str, Any]], float | None]
    fmt: str
    target: str = ""  # as the issue states it, for chatlab/Node
    met: Callable[[float], bool] | None = None  # given the ratio


FIGURES = [
    Figure("echo-1", "echo, 1 listener: p50 ms", _get("latency", "p50_ms"), "{:.2f}",
           "<= 1.2x", lambda r: r <= 1.2),
    Figure("echo-1", "echo, 1 listener: p99 ms", _get("latency", "p99_ms"), "{:.2f}"),
    Figure("echo-10", "echo, 10 listeners: p50 ms", _get("latency", "p50_ms"), "{:.2f}",
           "<= 1.2x", lambda r: r <= 1.2),
    Figure("echo-10", "echo, 10 listeners: p99 ms", _get("latency", "p99_ms"), "{:.2f}"),
    Figure("echo-1-long", "echo, 1 listener, 10,000 messages: p50 ms",
           _get("latency", "p50_ms"), "{:.2f}"),
    Figure("echo-1-long", "echo, 1 listener, 10,000 messages: CPU us/delivery",
           _get("server_cpu_us_per_delivery"), "{:.1f}"),
    Figure("echo-1-db", "echo, 1 listener, --db: p50 ms", _get("latency", "p50_ms"), "{:.2f}",
           "<= 1.5x", lambda r: r <= 1.5),
    Figure("echo-1-db", "echo, 1 listener, --db: p99 ms", _get("latency", "p99_ms"), "{:.2f}"),
    Figure("echo-10-db", "echo, 10 listeners, --db: p50 ms", _get("latency", "p50_ms"),
           "{:.2f}", "<= 1.5x", lambda r: r <= 1.5),
    Figure("echo-10-db", "echo, 10 listeners, --db: p99 ms", _get("latency", "p99_ms"),
           "{:.2f}"),
    Figure("echo-100", "echo, 100 listeners: p50 ms", _get("latency", "p50_ms"), "{:.2f}",
           "<= 2x", lambda r: r <= 2),
    Figure("echo-100", "echo, 100 listeners: p99 ms", _get("latency", "p99_ms"), "{:.2f}"),
    Figure("echo-100", "echo, 100 listeners: CPU us/delivery",
           _get("server_cpu_us_per_delivery"), "{:.1f}"),
    Figure("fanout", "fan-out: deliveries/s", _get("deliveries_per_s"), "{:,.0f}",
           ">= 1.2x", lambda r: r >= 1.2),
    Figure("fanout", "fan-out: server CPU us/delivery", _get("server_cpu_us_per_delivery"),
           "{:.1f}", "<= 0.8x", lambda r: r <= 0.8),
    Figure("fanout-db", "fan-out, --db: deliveries/s", _get("deliveries_per_s"), "{:,.0f}"),
    Figure("fanout-db", "fan-out, --db: server CPU us/delivery",
           _get("server_cpu_us_per_delivery"), "{:.1f}"),
    Figure("fanout", "fan-out: server CPU share (1 = a core)",
           _get("usage", "server_cpu_share"), "{:.2f}"),
    Figure("fanout", "fan-out: server waiting for a CPU (share)",
           _get("usage", "server_runqueue_share"), "{:.2f}"),
    Figure("fanout", "fan-out: load generator CPU share", _get("usage", "loadgen_cpu_share"),
           "{:.2f}"),
    Figure("fanout", "fan-out: sender's echo p50 ms", _get("echo_under_load", "p50_ms"),
           "{:.1f}"),
    Figure("churn", "churn: connections/s", _get("connections_per_s"), "{:,.0f}",
           ">= 1x", lambda r: r >= 1),
    Figure("churn", "churn: server CPU ms/connection", _get("server_cpu_ms_per_connection"),
           "{:.2f}"),
    Figure("online", "users online (1,000): seconds", _online_time, "{:.1f}",
           "<= 1x", lambda r: r <= 1),
    Figure("online", "users online: server CPU ms/user",
           _get("server_cpu_ms_per_user"), "{:.1f}"),
    Figure("online", "memory idle: MB", lambda r: _mb(r.get("rss_idle_kb")), "{:.1f}"),
    Figure("online", "memory, users online: MB", lambda r: _mb(r.get("rss_online_kb")),
           "{:.1f}"),
    Figure("online", "memory per connected user: KB", _get("kb_per_user"), "{:.1f}",
           "< 1x", lambda r: r < 1),
]


def _mb(kb: float | None) -> float | None:
    return None if kb is None else kb / 1024


CLUSTER_FIGURES = [
    Figure("cluster-fanout", "cross-node fan-out: deliveries/s", _get("deliveries_per_s"),
           "{:,.0f}", ">= 0.8x", lambda r: r >= 0.8),
    Figure("cluster-fanout", "  of them to node 2's clients: deliveries/s",
           _get("cross_node_deliveries_per_s"), "{:,.0f}"),
    Figure("cluster-fanout", "CPU us/delivery: both nodes + Redis",
           _get("server_cpu_us_per_delivery"), "{:.1f}"),
    Figure("cluster-fanout", "  node 1 (senders) us/delivery",
           _get("server_cpu_us_per_delivery_parts", "node1"), "{:.2f}"),
    Figure("cluster-fanout", "  node 2 us/delivery",
           _get("server_cpu_us_per_delivery_parts", "node2"), "{:.2f}"),
    Figure("cluster-fanout", "  redis-server us/delivery",
           _get("server_cpu_us_per_delivery_parts", "redis"), "{:.2f}"),
    Figure("cluster-fanout", "CPU share: node 1 (1 = a core)",
           _get("usage", "parts", "node1", "cpu_share"), "{:.2f}"),
    Figure("cluster-fanout", "CPU share: node 2", _get("usage", "parts", "node2", "cpu_share"),
           "{:.2f}"),
    Figure("cluster-fanout", "CPU share: redis-server",
           _get("usage", "parts", "redis", "cpu_share"), "{:.2f}"),
    Figure("cluster-fanout", "waiting for a CPU (share, all three)",
           _get("usage", "server_runqueue_share"), "{:.2f}"),
    Figure("cluster-fanout", "load generator CPU share", _get("usage", "loadgen_cpu_share"),
           "{:.2f}"),
    Figure("cluster-fanout", "fan-out: sender's echo p50 ms", _get("echo_under_load", "p50_ms"),
           "{:.1f}"),
    Figure("cluster-echo", "echo node 1 -> node 2: p50 ms", _get("cross_node", "p50_ms"),
           "{:.2f}", "<= 2x", lambda r: r <= 2),
    Figure("cluster-echo", "echo node 1 -> node 2: p99 ms", _get("cross_node", "p99_ms"),
           "{:.2f}"),
    Figure("cluster-echo", "sender's acknowledgement: p50 ms", _get("ack", "p50_ms"), "{:.2f}"),
    Figure("cluster-echo", "sender's own echo (node 1): p50 ms", _get("latency", "p50_ms"),
           "{:.2f}"),
]


# ------------------------------------------------------------- processes


class Server:
    """A chat server subprocess: started, its URL read from its ready line,
    and killed (it is thrown away after one scenario)."""

    def __init__(self, kind: str, command: list[str], timeout: float = 60, *,
                 cwd: Path = ROOT, env: dict[str, str] | None = None,
                 ready: re.Pattern[str] = READY, url: str | None = None) -> None:
        self.kind = kind
        self.command = command
        self.log = b""
        self.proc = subprocess.Popen(
            command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, start_new_session=True)
        self.pid = self.proc.pid
        lines: queue.Queue[bytes | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, args=(lines,), daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.stop()
                raise RuntimeError(f"{kind} server gave no ready line in {timeout:g} s: "
                                   f"{self.log.decode(errors='replace')}") from None
            if line is None:
                self.stop()
                raise RuntimeError(f"{kind} server exited ({self.proc.poll()}): "
                                   f"{self.log.decode(errors='replace')}")
            match = ready.search(line.decode(errors="replace"))
            if match:
                self.url = url or f"http://127.0.0.1:{match.group(1) or match.group(2)}"
                return

    def _read(self, lines: "queue.Queue[bytes | None]") -> None:
        # Keeps reading, so a server that logs never blocks on a full pipe.
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if len(self.log) < 20_000:
                self.log += line
            lines.put(line)
        lines.put(None)

    def stop(self) -> None:
        # Killed outright: a graceful stop would first tell every remaining
        # client that the others left, which is not what is measured.
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def redis_server_path() -> str | None:
    return shutil.which("redis-server") or next(
        (path for path in ("/usr/bin/redis-server",) if os.access(path, os.X_OK)), None)


def start_redis(redis_server: str) -> Server:
    """A fresh, empty redis-server on a free port of 127.0.0.1, saving nothing."""
    error: RuntimeError | None = None
    for _ in range(3):  # another process may take the free port first
        port = free_port()
        try:
            return Server("redis", [redis_server, "--port", str(port), "--bind", "127.0.0.1",
                                    "--save", "", "--appendonly", "no",
                                    "--protected-mode", "yes"],
                          timeout=15, ready=REDIS_READY, url=f"redis://127.0.0.1:{port}/0")
        except RuntimeError as exc:
            error = exc
    assert error is not None
    raise error


class ClusterProcesses:
    """A fresh redis-server and two nodes of one chat on it. ``stop()``
    kills them all; so does a failure to start any of them."""

    def __init__(self, kind: str, redis_server: str,
                 node_command: Callable[[str], list[str]]) -> None:
        self.processes: list[Server] = []
        try:
            self.redis = start_redis(redis_server)
            self.processes.append(self.redis)
            self.nodes = []
            for _ in range(2):
                self.nodes.append(Server(kind, node_command(self.redis.url)))
                self.processes.append(self.nodes[-1])
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for process in reversed(self.processes):
            try:
                process.stop()
            except (OSError, subprocess.SubprocessError):
                pass  # gone already
        self.processes = []


def run_loadgen(node: str, kind: str, url: str, pid: int | str | None, args: list[str],
                timeout: float) -> dict[str, Any]:
    command = [node, str(LOADGEN), kind, "--url", url, "--clk-tck", str(CLK_TCK),
               "--timeout", str(int(timeout)), *args]
    if pid is not None:
        command += ["--pid", str(pid)]
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                              timeout=timeout + 30)
    except subprocess.TimeoutExpired:
        return {"error": f"the load generator did not finish in {timeout + 30:g} s"}
    lines = done.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        return {"error": f"no result (exit {done.returncode}): {done.stderr.strip()[-2000:]}"}


# ------------------------------------------------------------- the run


def ensure_npm_packages(npm: str) -> None:
    for prefix in dict.fromkeys(where for _, where in NPM_PACKAGES):
        wanted = [name for name, where in NPM_PACKAGES if where == prefix]
        if all((prefix / "node_modules" / name / "package.json").exists() for name in wanted):
            continue
        shown = prefix.relative_to(ROOT)
        print(f"installing the npm packages of {shown} (npm ci --prefix {shown}) ...", flush=True)
        subprocess.run([npm, "ci", "--prefix", str(prefix), "--no-audit", "--no-fund",
                        "--loglevel=error"], check=True, cwd=ROOT, timeout=600)


def versions(node: str) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    def python_version(package: str) -> str:
        try:
            return version(package)
        except PackageNotFoundError:
            return "not installed"

    def npm_version(package: str, prefix: Path | None = None) -> str:
        prefix = prefix or next(where for name, where in NPM_PACKAGES if name == package)
        path = prefix / "node_modules" / package / "package.json"
        try:
            return json.loads(path.read_text())["version"]
        except OSError:
            return "?"

    def redis_version() -> str:
        path = redis_server_path()
        if path is None:
            return "not installed"
        out = subprocess.run([path, "--version"], capture_output=True, text=True).stdout
        match = re.search(r"v=(\S+)", out)
        return match.group(1) if match else "?"

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return "?"

    dirty = git("status", "--porcelain", "--", "chatlab")
    return {
        "chatlab commit": git("rev-parse", "--short", "HEAD") + (" + uncommitted changes to chatlab/" if dirty else ""),
        "python": platform.python_version(),
        "python-socketio": version("python-socketio"),
        "python-engineio": version("python-engineio"),
        "aiohttp": version("aiohttp"),
        "node": subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip(),
        "socket.io": npm_version("socket.io"),
        "socket.io-client": npm_version("socket.io-client"),
        "ws": npm_version("ws"),
        "cluster: socket.io": npm_version("socket.io", BENCH),
        "@socket.io/redis-adapter": npm_version("@socket.io/redis-adapter"),
        "redis (npm)": npm_version("redis"),
        "redis-server": redis_version(),
        "redis (python)": python_version("redis"),
        "cpus": str(os.cpu_count()),
        "kernel": platform.release(),
    }


def fresh_db() -> Path:
    """A database file path no server has used, removed when the run ends
    (with its write-ahead log)."""
    folder = Path(tempfile.mkdtemp(prefix="chatlab-bench-db-"))
    atexit.register(shutil.rmtree, folder, True)
    return folder / "chat.db"


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


@dataclass
class Results:
    runs: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    kernel: list[dict[str, Any]] = field(default_factory=list)

    def add(self, scenario: str, server: str, result: dict[str, Any]) -> None:
        self.runs.setdefault((scenario, server), []).append(result)

    def values(self, figure: Figure, server: str) -> list[float]:
        out = []
        for result in self.runs.get((figure.scenario, server), []):
            if "error" not in result:
                value = figure.get(result)
                if value is not None:
                    out.append(value)
        return out


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def show(value: float | None, fmt: str) -> str:
    if value is None:
        return "-"
    if math.isinf(value):
        return "timed out"
    return fmt.format(value)


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    line = lambda row: "| " + " | ".join(  # noqa: E731
        cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row)
    ) + " |"
    rule = "|" + "|".join("-" * (w + 1) + (":" if i else "-") for i, w in enumerate(widths)) + "|"
    return "\n".join([line(header), rule, *map(line, rows)])


def report(results: Results, limit: float, figures: list[Figure] = FIGURES) -> str:
    rows = []
    for figure in figures:
        chat = median(results.values(figure, "chatlab"))
        node = median(results.values(figure, "node"))
        if chat is None or node is None or node == 0 or math.isinf(node):
            ratio = None
        else:
            ratio = chat / node
        ratio_text = "-" if ratio is None else ("inf" if math.isinf(ratio) else f"{ratio:.2f}x")
        met = ""
        if figure.met is not None and ratio is not None:
            met = "yes" if figure.met(ratio) else "no"
        rows.append([figure.label, show(chat, figure.fmt), show(node, figure.fmt), ratio_text,
                     figure.target, met])
    if results.kernel:
        rows += kernel_rows(results)
    text = table(rows, ["figure (median of rounds)", "chatlab", "node", "chatlab/node",
                        "target", "met"])
    for server in SERVERS:
        runs = [r for r in results.runs.get(("online", server), []) if "error" not in r]
        short = [r for r in runs if not r.get("complete")]
        if short:
            counts = sorted(r["users"] for r in short)
            text += (f"\n\n{server}: the users-online scenario reached its {limit:g} s limit in "
                     f"{len(short)} of {len(runs)} round(s), with {counts[0]:,}"
                     f"{f'-{counts[-1]:,}' if counts[-1] != counts[0] else ''} of "
                     f"{short[0]['users_wanted']:,} users online; its CPU and memory figures "
                     f"are for that many users.")
    return text


def kernel_rows(results: Results) -> list[list[str]]:
    ok = [k for k in results.kernel if "error" not in k]
    get = lambda *path: median([v for k in ok if (v := _get(*path)(k)) is not None])  # noqa: E731
    fanout = next(f for f in FIGURES if f.label == "fan-out: deliveries/s")
    node_fanout = median(results.values(fanout, "node"))
    dps = get("fanout", "deliveries_per_s")
    ratio = "-" if dps is None or not node_fanout else f"{dps / node_fanout:.2f}x"
    p95 = get("under_load", "p95_ms")
    return [
        ["in kernel, fan-out: deliveries/s (vs Node standalone)", show(dps, "{:,.0f}"), "", ratio,
         "(report)", ""],
        ["in kernel, fan-out: kernel CPU us/delivery", show(get("fanout", "server_cpu_us_per_delivery"), "{:.1f}"),
         "", "", "", ""],
        ["in kernel, idle: trivial cell p50 ms", show(get("idle", "p50_ms"), "{:.1f}"), "", "", "", ""],
        ["in kernel, idle: trivial cell p95 ms", show(get("idle", "p95_ms"), "{:.1f}"), "", "", "", ""],
        ["in kernel, clients chatting: trivial cell p50 ms",
         show(get("under_load", "p50_ms"), "{:.1f}"), "", "", "", ""],
        ["in kernel, clients chatting: trivial cell p95 ms", show(p95, "{:.1f}"), "", "", "< 50 ms",
         "" if p95 is None else ("yes" if p95 < 50 else "no")],
    ]


def integrity(results: Results) -> str:
    rows = []
    for server in SERVERS:
        totals = {"runs": 0, "failed": 0, "deliveries": 0, "lost": 0, "duplicates": 0,
                  "reordered": 0, "refusals": 0, "users list not emptied": 0,
                  "final users list missing": 0}
        for (scenario, who), runs in results.runs.items():
            if who != server:
                continue
            for r in runs:
                totals["runs"] += 1
                if "error" in r:
                    totals["failed"] += 1
                    continue
                for key in ("deliveries", "lost", "duplicates", "reordered", "refusals"):
                    totals[key] += int(r.get(key) or 0)
                if r.get("users_empty") is False:
                    totals["users list not emptied"] += 1
                totals["final users list missing"] += int(r.get("users_without_final_list") or 0)
        rows.append([server, *(f"{v:,}" for v in totals.values())])
    if results.kernel:
        ok = [k["fanout"] for k in results.kernel if "fanout" in k]
        sums = [sum(int(f.get(key) or 0) for f in ok)
                for key in ("deliveries", "lost", "duplicates", "reordered", "refusals")]
        rows.append(["chatlab in kernel", str(len(results.kernel)),
                     str(len(results.kernel) - len(ok)), *(f"{v:,}" for v in sums), "-", "-"])
    return table(rows, ["server", "runs", "failed", "deliveries counted", "lost", "duplicates",
                        "reordered", "refusals", "users list not emptied",
                        "final users list missing"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Benchmark the chatlab chat server against the Node.js reference.")
    parser.add_argument("--rounds", type=int, default=None,
                        help="rounds of A B (chatlab, Node) per scenario "
                             "(default 3; 1 with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: tiny sizes, 1 round")
    parser.add_argument("--scenarios", default=",".join(s.name for s in SCENARIOS),
                        help="comma-separated subset of: "
                             + ", ".join(s.name for s in SCENARIOS))
    parser.add_argument("--chatlab-cmd", default=None,
                        help="command that runs the chatlab server on a free port of "
                             "127.0.0.1 and prints its URL, e.g. '.venv/bin/python -m "
                             "chatlab serve --port 0' (default: bench/chatlab_server.py "
                             "--port 0, which turns the rate limit off)")
    parser.add_argument("--online-limit", type=float, default=60,
                        help="seconds after which no new user starts joining in the "
                             "1,000-users-online scenario (default 60)")
    parser.add_argument("--no-kernel", action="store_true",
                        help="skip the in-kernel responsiveness measurement")
    parser.add_argument("--loadgen-arg", action="append", default=[],
                        help="extra argument for every load generator run, e.g. "
                             "--loadgen-arg=--no-deflate (repeatable)")
    parser.add_argument("--json", type=Path, default=None,
                        help="also write every raw result to this file")
    parser.add_argument("--hostile", action="store_true",
                        help="run only the hostile-client scenarios (bench/hostile.py)")
    parser.add_argument("--no-hostile", action="store_true",
                        help="skip the hostile-client scenarios")
    parser.add_argument("--hostile-rounds", type=int, default=1,
                        help="rounds of the hostile-client scenarios (default 1)")
    parser.add_argument("--cluster", action="store_true",
                        help="run only the cluster scenarios (two chatlab nodes on one "
                             "Redis against two Node.js nodes with socket.io's Redis adapter)")
    parser.add_argument("--no-cluster", action="store_true",
                        help="skip the cluster scenarios")
    import hostile  # bench/ is on sys.path
    hostile.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.hostile and args.no_hostile:
        parser.error("--hostile and --no-hostile exclude each other")
    if args.cluster and args.no_cluster:
        parser.error("--cluster and --no-cluster exclude each other")
    if args.cluster and args.hostile:
        parser.error("--cluster and --hostile each run only their own scenarios: give one")
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3

    node = shutil.which("node")
    npm = shutil.which("npm")
    if node is None or npm is None:
        print("bench: Node.js (node and npm) is needed", file=sys.stderr)
        return 1
    ensure_npm_packages(npm)
    chatlab_cmd = (shlex.split(args.chatlab_cmd) if args.chatlab_cmd
                   else [sys.executable, str(CHATLAB_SERVER), "--port", "0"])
    commands = {"chatlab": chatlab_cmd, "node": [node, str(NODE_SERVER), "--no-delivery", "0"]}
    wanted = args.scenarios.split(",")
    unknown = set(wanted) - {s.name for s in SCENARIOS}
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    scenarios = [s for s in SCENARIOS if s.name in wanted]
    cluster_rounds = 0 if args.no_cluster or args.hostile else args.rounds
    if args.hostile:
        scenarios, args.rounds, args.no_kernel = [], 0, True
    if args.cluster:
        scenarios, args.no_kernel, args.no_hostile = [], True, True

    started = datetime.datetime.now(datetime.timezone.utc)
    info = versions(node)
    if args.hostile:  # the only chatlab server is the one of --chatlab-tree
        info["chatlab commit"] = hostile.tree_commit(args.chatlab_tree)
    rounds = ("hostile clients only" if args.hostile else
              f"{args.rounds} round(s), cluster scenarios only" if args.cluster else
              f"{args.rounds} round(s)")
    print(f"chatlab benchmark, {started:%Y-%m-%d %H:%M} UTC, {rounds}"
          f"{' (quick)' if args.quick else ''}, load average {loadavg()}")
    print("  " + ", ".join(f"{k} {v}" for k, v in info.items()))
    if scenarios or not args.no_kernel:
        print(f"  chatlab server: {shlex.join(chatlab_cmd)}")
    results = Results()
    for round_number in range(1, args.rounds + 1 if scenarios or not args.no_kernel else 1):
        for scenario in scenarios:
            extra = list(scenario.quick if args.quick else scenario.full)
            timeout = scenario.timeout or args.online_limit + 120
            if scenario.kind == "online":
                extra += ["--time-limit", str(args.online_limit)]
            extra += args.loadgen_arg
            for server_kind in SERVERS:
                t0 = time.monotonic()
                command = commands[server_kind]
                if scenario.db and server_kind == "chatlab":
                    command = [*command, "--db", str(fresh_db())]
                try:
                    server = Server(server_kind, command)
                except RuntimeError as exc:
                    result: dict[str, Any] = {"error": str(exc)}
                else:
                    # chatlab sends `history` on connect and live messages
                    # only after it; the Node.js reference sends none.
                    history = ["--history", "yes" if server_kind == "chatlab" else "no"]
                    try:
                        result = run_loadgen(node, scenario.kind, server.url, server.pid,
                                             history + extra, timeout)
                    finally:
                        server.stop()
                results.add(scenario.name, server_kind, result)
                print(f"  round {round_number} {scenario.name:9} {server_kind:8} "
                      f"{time.monotonic() - t0:5.1f} s  {summary(scenario.kind, result)}",
                      flush=True)
        if not args.no_kernel:
            t0 = time.monotonic()
            from kernel_responsiveness import measure  # bench/ is on sys.path
            try:
                kernel = measure(node=node, quick=args.quick, extra=args.loadgen_arg)
            except Exception as exc:  # noqa: BLE001 - reported, the run goes on
                kernel = {"error": f"{type(exc).__name__}: {exc}"}
            results.kernel.append(kernel)
            print(f"  round {round_number} {'kernel':9} {'chatlab':8} "
                  f"{time.monotonic() - t0:5.1f} s  {kernel_summary(kernel)}", flush=True)

    if results.runs or results.kernel:
        print()
        print(report(results, args.online_limit))
        print()
        print("Every delivery counted (all runs):")
        print(integrity(results))
    cluster = Results()
    if cluster_rounds:
        print(f"\nCluster ({cluster_rounds} round(s)): two nodes on a fresh redis-server each "
              f"time; chatlab: {shlex.join([*chatlab_cmd, '--redis', 'URL'])}, Node.js: "
              f"{CLUSTER_NODE.relative_to(ROOT)} --redis URL 0", flush=True)
        cluster = run_cluster(args, node, chatlab_cmd, cluster_rounds)
        if cluster.runs:
            print()
            print(report(cluster, args.online_limit, CLUSTER_FIGURES))
            print()
            print("Every delivery counted (cluster runs):")
            print(integrity(cluster))
    hostile_results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    if not args.no_hostile:
        print(f"\nHostile clients ({args.hostile_rounds} round(s)): chatlab server "
              f"`python -m chatlab serve --port 0` from {args.chatlab_tree.resolve()} "
              f"(commit {hostile.tree_commit(args.chatlab_tree)}), Node.js "
              f"{NODE_SERVER.relative_to(ROOT)} 0", flush=True)
        hostile_results = hostile.run_hostile(
            args, node, args.hostile_rounds, args.quick, log=lambda line: print(line, flush=True))
        print()
        print(hostile.report(hostile_results))
    finished = datetime.datetime.now(datetime.timezone.utc)
    print(f"\n{(finished - started).total_seconds() / 60:.1f} minutes; "
          f"load average at the end {loadavg()}")
    if args.json:
        args.json.write_text(json.dumps({
            "started": started.isoformat(), "versions": info, "args": vars(args) | {"json": str(args.json)},
            "runs": [{"scenario": s, "server": k, "results": r} for (s, k), r in results.runs.items()],
            "kernel": results.kernel,
            "cluster": [{"scenario": s, "server": k, "results": r}
                        for (s, k), r in cluster.runs.items()],
            "hostile": [{"scenario": s, "server": k, "results": r}
                        for (s, k), r in hostile_results.items()],
        }, indent=1, default=str))
    every = [r for runs in results.runs.values() for r in runs]
    every += [r for runs in cluster.runs.values() for r in runs]
    every += [r for runs in hostile_results.values() for r in runs]
    return 1 if every and all("error" in r for r in every) else 0


def run_cluster(args: argparse.Namespace, node: str, chatlab_cmd: list[str],
                rounds: int) -> Results:
    """The cluster scenarios, A B A B: for each, a fresh Redis and two chatlab
    nodes, then a fresh Redis and two Node.js nodes, every process killed
    after its run."""
    results = Results()
    redis_server = redis_server_path()
    commands: dict[str, Callable[[str], list[str]]] = {
        "chatlab": lambda url: [*chatlab_cmd, "--redis", url],
        "node": lambda url: [node, str(CLUSTER_NODE), "--redis", url, "0"],
    }
    for round_number in range(1, rounds + 1):
        for scenario in CLUSTER_SCENARIOS:
            extra = list(scenario.quick if args.quick else scenario.full) + args.loadgen_arg
            for server_kind in SERVERS:
                t0 = time.monotonic()
                if redis_server is None:
                    result: dict[str, Any] = {"error": "redis-server is not installed"}
                else:
                    try:
                        cluster = ClusterProcesses(server_kind, redis_server,
                                                   commands[server_kind])
                    except RuntimeError as exc:
                        result = {"error": str(exc)}
                    else:
                        one, two = cluster.nodes
                        pids = ",".join(str(p.pid) for p in (one, two, cluster.redis))
                        history = ["--history", "yes" if server_kind == "chatlab" else "no"]
                        try:
                            result = run_loadgen(
                                node, scenario.kind, one.url, pids,
                                [*history, "--url2", two.url,
                                 "--pid-names", ",".join(CLUSTER_PARTS), *extra],
                                scenario.timeout)
                        finally:
                            cluster.stop()
                results.add(scenario.name, server_kind, result)
                print(f"  round {round_number} {scenario.name:14} {server_kind:8} "
                      f"{time.monotonic() - t0:5.1f} s  {cluster_summary(scenario.kind, result)}",
                      flush=True)
    return results


def cluster_summary(kind: str, result: dict[str, Any]) -> str:
    if "error" in result:
        return "ERROR " + result["error"][:300]
    lost = (f"lost {result.get('lost', 0)}, duplicates {result.get('duplicates', 0)}, "
            f"reordered {result.get('reordered', 0)}")
    if kind == "echo":
        return (f"node 1 -> node 2 p50 {result['cross_node']['p50_ms']:.2f} ms, "
                f"ack p50 {result['ack']['p50_ms']:.2f} ms, {lost}")
    parts = result.get("server_cpu_us_per_delivery_parts") or {}
    split = " + ".join(f"{parts[name]:.1f}" for name in CLUSTER_PARTS if name in parts)
    return (f"{result['deliveries_per_s']:,.0f} deliveries/s, "
            f"{result.get('server_cpu_us_per_delivery') or 0:.1f} us CPU each ({split}), {lost}")


def summary(kind: str, result: dict[str, Any]) -> str:
    if "error" in result:
        return "ERROR " + result["error"][:300]
    lost = f"lost {result.get('lost', 0)}, reordered {result.get('reordered', 0)}"
    if kind == "echo":
        lat = result["latency"]
        return f"p50 {lat['p50_ms']:.2f} ms, p99 {lat['p99_ms']:.2f} ms, {lost}"
    if kind == "fanout":
        return (f"{result['deliveries_per_s']:,.0f} deliveries/s, "
                f"{result.get('server_cpu_us_per_delivery') or 0:.1f} us CPU each, {lost}")
    if kind == "churn":
        return (f"{result['connections_per_s']:,.0f} connections/s, "
                f"users list empty: {result['users_empty']}")
    if kind == "online":
        return (f"{result['users']} users online in {result['online_s']:.1f} s"
                f"{'' if result.get('complete') else ' (time limit)'}, "
                f"RSS {result.get('rss_idle_kb', 0) / 1024:.0f} -> "
                f"{result.get('rss_online_kb', 0) / 1024:.0f} MB")
    return ""


def kernel_summary(kernel: dict[str, Any]) -> str:
    if "error" in kernel:
        return "ERROR " + kernel["error"][:300]
    return (f"trivial cell p50/p95 idle {kernel['idle']['p50_ms']:.1f}/"
            f"{kernel['idle']['p95_ms']:.1f} ms, chatting {kernel['under_load']['p50_ms']:.1f}/"
            f"{kernel['under_load']['p95_ms']:.1f} ms; "
            f"{kernel['fanout'].get('deliveries_per_s', 0):,.0f} deliveries/s")


if __name__ == "__main__":
    sys.exit(main())
