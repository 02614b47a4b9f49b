"""How responsive a Jupyter kernel stays while a chatlab chat in it is busy.

    .venv/bin/python bench/kernel_responsiveness.py [--quick]

Starts a Jupyter kernel (jupyter_client), runs a cell that starts the chat
server in it (``await ChatServer(fast=True, ...).serve()``, on the kernel's
own event loop, as the lessons do, with the fast paths a busy chat uses), and times a trivial cell (``1+1``: sent, executed,
its reply and the kernel's return to idle received) back to back, first
with the chat idle, then while the benchmark's load generator runs its
fan-out scenario against the chat (100 clients, 10 of them sending as fast
as a window of messages in flight allows). The kernel's CPU time per
delivery is read from /proc, as for the standalone servers.

The chat in the kernel has its rate limit set out of the way, as the
standalone chatlab server in the benchmark does (``--rate-limit default``
keeps ``ChatServer()``'s own limit of 20 events a second per connection,
which refuses most of a fast sender's messages).

``bench/run.py`` calls :func:`measure` once a round.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Sequence

from jupyter_client.manager import KernelManager

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
LOADGEN = BENCH / "loadgen.mjs"

FANOUT = ("--clients", "100", "--senders", "10", "--window", "8", "--duration", "10")
FANOUT_QUICK = ("--clients", "20", "--senders", "4", "--window", "4", "--duration", "2")
IDLE_PROBES, IDLE_PROBES_QUICK = 100, 20

SERVE = """\
import chatlab
chat = chatlab.ChatServer(fast=True, {limits})
server = await chat.serve(name="bench")
print(server.url)
"""
NO_LIMIT = "limits=chatlab.Limits(events_per_second=1e9, burst=10**9)"


def percentiles(samples: list[float]) -> dict[str, Any]:
    ordered = sorted(samples)

    def rank(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, -(-int(q * len(ordered) * 1000) // 1000) - 1))]

    return {
        "count": len(ordered),
        "p50_ms": rank(0.5),
        "p95_ms": rank(0.95),
        "max_ms": ordered[-1],
        "mean_ms": statistics.fmean(ordered),
    }


def run_cell(client: Any, code: str, timeout: float = 60) -> str:
    """Execute ``code``; return its stdout; raise if it failed."""
    out: list[str] = []
    errors: list[str] = []

    def hook(msg: dict[str, Any]) -> None:
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream" and content["name"] == "stdout":
            out.append(content["text"])
        elif kind == "error":
            errors.append(f"{content['ename']}: {content['evalue']}")

    reply = client.execute_interactive(code, timeout=timeout, output_hook=hook,
                                       store_history=False)
    if reply["content"]["status"] != "ok" or errors:
        raise RuntimeError(f"the cell failed: {' '.join(errors) or reply['content']}")
    return "".join(out)


def probe(client: Any, timeout: float = 30) -> float:
    """Milliseconds for a trivial cell to execute, round trip."""
    start = time.perf_counter()
    reply = client.execute_interactive("1+1", timeout=timeout, output_hook=lambda msg: None,
                                       store_history=False)
    elapsed = (time.perf_counter() - start) * 1000
    if reply["content"]["status"] != "ok":
        raise RuntimeError(f"the trivial cell failed: {reply['content']}")
    return elapsed


def measure(*, node: str | None = None, quick: bool = False, extra: Sequence[str] = (),
            rate_limit: str = "off", timeout: float = 180) -> dict[str, Any]:
    """Start a kernel with a chat in it, load the chat, time trivial cells."""
    node = node or shutil.which("node") or "node"
    manager = KernelManager(kernel_name="python3")
    # The kernel's own log lines (a warning about TCP without encryption, on
    # 127.0.0.1) are not the benchmark's output.
    manager.start_kernel(cwd=str(ROOT), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = manager.client()
    client.start_channels()
    loadgen: subprocess.Popen[str] | None = None
    try:
        client.wait_for_ready(timeout=60)
        pid = manager.provisioner.pid
        limits = NO_LIMIT if rate_limit == "off" else ""
        url = run_cell(client, SERVE.format(limits=limits)).strip().splitlines()[-1]
        for _ in range(5):  # the first cells after start-up are slower
            probe(client)
        idle = [probe(client) for _ in range(IDLE_PROBES_QUICK if quick else IDLE_PROBES)]

        command = [node, str(LOADGEN), "fanout", "--url", url, "--pid", str(pid),
                   "--clk-tck", str(os.sysconf("SC_CLK_TCK")), "--timeout", str(int(timeout)),
                   "--history", "yes",
                   *(FANOUT_QUICK if quick else FANOUT), *extra]
        loadgen = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        phases: queue.Queue[str | None] = queue.Queue()
        stderr: list[str] = []

        def read_phases() -> None:
            assert loadgen is not None and loadgen.stderr is not None
            for line in loadgen.stderr:
                stderr.append(line)
                if line.startswith("# phase "):
                    phases.put(line.split()[2])
            phases.put(None)

        threading.Thread(target=read_phases, daemon=True).start()
        # Trivial cells are timed while the senders send (the "measuring"
        # phase), not while the clients join or the last deliveries drain.
        deadline = time.monotonic() + timeout
        phase: str | None = ""
        while phase != "measuring":
            phase = phases.get(timeout=max(0.0, deadline - time.monotonic()))
            if phase is None:
                raise RuntimeError(f"the load generator ended early: {''.join(stderr)[-2000:]}")
        busy: list[float] = []
        while phases.empty():
            busy.append(probe(client))
        stdout, _ = loadgen.communicate(timeout=max(1.0, deadline - time.monotonic()))
        fanout = json.loads(stdout.strip().splitlines()[-1])
        if "error" in fanout:
            raise RuntimeError(f"the load generator failed: {fanout['error']}")
        run_cell(client, "await chatlab.shutdown()")
        return {"idle": percentiles(idle), "under_load": percentiles(busy), "fanout": fanout,
                "rate_limit": rate_limit}
    finally:
        if loadgen is not None and loadgen.poll() is None:
            loadgen.kill()
            loadgen.wait(timeout=30)
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes")
    parser.add_argument("--rate-limit", choices=("off", "default"), default="off",
                        help="the chat's rate limit: out of the way (off, the default) "
                             "or ChatServer()'s own")
    parser.add_argument("--loadgen-arg", action="append", default=[],
                        help="extra argument for the load generator (repeatable)")
    args = parser.parse_args()
    result = measure(quick=args.quick, extra=args.loadgen_arg, rate_limit=args.rate_limit)
    idle, busy, fanout = result["idle"], result["under_load"], result["fanout"]
    print(f"trivial cell, chat idle:        p50 {idle['p50_ms']:.1f} ms, p95 {idle['p95_ms']:.1f} ms"
          f" ({idle['count']} cells)")
    print(f"trivial cell, clients chatting: p50 {busy['p50_ms']:.1f} ms, p95 {busy['p95_ms']:.1f} ms"
          f" ({busy['count']} cells)")
    print(f"chat in the kernel: {fanout['deliveries_per_s']:,.0f} deliveries/s, "
          f"{fanout['server_cpu_us_per_delivery']:.1f} us kernel CPU each, "
          f"lost {fanout['lost']}, reordered {fanout['reordered']}, refusals {fanout['refusals']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
