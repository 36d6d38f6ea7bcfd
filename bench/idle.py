"""Many idle connections: what one worker holds per idle connection, whether
it gives the memory back, and how fast it still answers meanwhile.

    python bench/idle.py [--connections 10000] [--kind http|ws]
                         [--servers diorite,granian,uvicorn] [--site DIR]

For each server (one worker, ASGI hello world, keep-alive timeout raised to
10 minutes where the server has one): the server's RSS after warm-up; then
N connections opened one after another, each making one request (or a
websocket handshake) and then left idle; the RSS with all of them held and
the number the server still holds open (its sockets in /proc/PID/fd); the
latency of 2,000 hello-world requests on one more keep-alive connection
while they are held (p50, p99); then every idle connection closed and the
RSS 10 s later. Growth per connection is (held - start) divided by the
connections the server holds (Granian closes most of them). Run by hand,
never in tests; memory figures do not need a release build, latency does.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from harness import tree_rss_mib
from run import BIN, ROOT, free_port, stop, wait_listening

APP = "bench.apps.asgi_app:app"
HELLO = b"GET / HTTP/1.1\r\nHost: idle\r\n\r\n"
UPGRADE = (
    b"GET /ws HTTP/1.1\r\nHost: idle\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def command(server: str, port: int) -> list[str]:
    where = ["--host", "127.0.0.1", "--port", str(port)]
    if server == "diorite":
        return [
            str(BIN / "diorite"),
            *where,
            "--interface",
            "asgi",
            "--log-level",
            "warning",
            "--timeout-keep-alive",
            "600",
            APP,
        ]
    if server == "granian":
        return [str(BIN / "granian"), *where, "--interface", "asgi", "--log-level", "warning", APP]
    if server == "uvicorn":
        return [
            str(BIN / "uvicorn"),
            *where,
            "--log-level",
            "warning",
            "--no-access-log",
            "--timeout-keep-alive",
            "600",
            APP,
        ]
    raise ValueError(server)


def read_head(sock: socket.socket) -> bytes:
    """Reads a response head and, for a sized body, the body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the response")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.lower().split(b"\r\n"):
        if line.startswith(b"content-length:"):
            size = int(line.split(b":")[1])
            while len(body) < size:
                body += sock.recv(65536)
    return head


def open_idle(port: int, count: int, request: bytes) -> list[socket.socket]:
    """Opens `count` connections; one the server refuses or closes (Granian
    keeps about a thousand) is left out, and the sockets it still holds are
    counted later from its side."""
    held = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port))
        try:
            sock.sendall(request)
            read_head(sock)
        except OSError:
            sock.close()
            continue
        held.append(sock)
    return held


def sockets_held(pid: int) -> int:
    """The server's open sockets, all its processes."""
    pids = [pid, *children(pid)]
    count = 0
    for p in pids:
        fd_dir = Path(f"/proc/{p}/fd")
        for fd in fd_dir.iterdir():
            try:
                if os.readlink(fd).startswith("socket:"):
                    count += 1
            except OSError:
                pass
    return count


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def latencies(port: int, count: int) -> list[float]:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    taken = []
    try:
        for _ in range(count):
            start = time.perf_counter()
            sock.sendall(HELLO)
            read_head(sock)
            taken.append((time.perf_counter() - start) * 1000)
    finally:
        sock.close()
    return taken


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(server: str, args) -> dict:
    port = free_port()
    env = dict(os.environ)
    paths = ([args.site] if args.site and server == "diorite" else []) + [str(ROOT)]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    proc = subprocess.Popen(
        command(server, port),
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_listening(port, proc)
        latencies(port, 2000)  # warm-up
        time.sleep(1)
        start = tree_rss_mib(proc.pid)
        sockets_before = sockets_held(proc.pid)
        held = open_idle(port, args.connections, UPGRADE if args.kind == "ws" else HELLO)
        # Idle for a while: diorite parks an idle HTTP/1 connection after a
        # second and gives the freed memory back on a one-second heartbeat.
        time.sleep(5)
        holding = tree_rss_mib(proc.pid)
        open_sockets = sockets_held(proc.pid) - sockets_before
        taken = latencies(port, 2000)
        for sock in held:
            sock.close()
        time.sleep(10)
        after = tree_rss_mib(proc.pid)
    finally:
        stop(proc)
    return {
        "start": start,
        "holding": holding,
        "after": after,
        "open": open_sockets,
        "per_conn_kib": (holding - start) * 1024 / max(1, open_sockets),
        "p50": statistics.median(taken),
        "p99": percentile(taken, 0.99),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--kind", choices=("http", "ws"), default="http")
    parser.add_argument("--servers", default="diorite,granian,uvicorn")
    parser.add_argument("--site", help="diorite build installed with pip --target DIR")
    args = parser.parse_args()
    rows = []
    for server in args.servers.split(","):
        if not (BIN / server).exists():
            print(f"{server}: not installed in {BIN}, left out", file=sys.stderr)
            continue
        result = measure(server, args)
        print(server, result, file=sys.stderr)
        rows.append((server, result))
    what = "websockets" if args.kind == "ws" else "keep-alive connections"
    print(f"\n{args.connections:,} idle {what}, one worker, ASGI hello world\n")
    print(
        "| server | RSS start MiB | RSS held MiB | KiB per connection | sockets held "
        "| p50 ms | p99 ms | RSS 10 s after MiB |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for server, r in rows:
        print(
            f"| {server} | {r['start']:.1f} | {r['holding']:.1f} | {r['per_conn_kib']:.1f} "
            f"| {r['open']:,} | {r['p50']:.2f} | {r['p99']:.2f} | {r['after']:.1f} |"
        )


if __name__ == "__main__":
    main()
