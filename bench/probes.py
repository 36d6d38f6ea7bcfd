"""Attack probes against diorite and its peers, and a Markdown table of what
each server did.

    python bench/probes.py [--diorite-python .venv/bin/python]
        [--servers diorite,granian,uvicorn,gunicorn] [--only NAME] [--out FILE]

Each server runs as a real process, one worker, on a free port, serving
bench/apps/probe_app.py (ASGI; its WSGI twin for Gunicorn). Diorite comes
from --diorite-python and runs with its defaults: no limit flags, so the
table shows what a user gets without tuning. The peers come from the
Python running this script (pip install granian 'uvicorn[standard]'
gunicorn h2). The probes themselves are in bench/probes_h1.py (raw HTTP/1.1
over sockets) and bench/probes_h2.py (raw HTTP/2 frames), since client
libraries refuse to send most of them.

A cell says what the server did: a status code (200 means the request was
accepted and reached the app), `closed` (the connection ended without an
answer), `reset`, `GOAWAY <code>`, or `hung` (no answer within the probe's
timeout). After every probe a normal request checks that the server still
answers; when it does not, the cell says so and the server is restarted
for the next probe. The servers are probed in parallel, one thread each,
to keep the run to a few minutes; the timings are each server's own
timeouts, far above any delay the sharing adds.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import probes_h1 as h1
import probes_h2 as h2
from harness import tree_rss_mib
from run import free_port

ROOT = Path(__file__).resolve().parent.parent
PEERS_BIN = Path(sys.executable).parent
SERVERS = ("diorite", "granian", "uvicorn", "gunicorn")
ASGI_APP = "bench.apps.probe_app:app"
WSGI_APP = "bench.apps.probe_app:wsgi_app"


def server_command(name: str, port: int, diorite_python: str, extra: list[str]) -> list[str]:
    if name == "diorite":
        return [diorite_python, "-m", "diorite", "--interface", "asgi", "--port", str(port),
                "--log-level", "warning", *extra, ASGI_APP]  # fmt: skip
    if name == "granian":
        return [str(PEERS_BIN / "granian"), "--interface", "asgi", "--port", str(port),
                "--workers", "1", "--log-level", "warning", ASGI_APP]  # fmt: skip
    if name == "uvicorn":
        return [str(PEERS_BIN / "uvicorn"), "--port", str(port), "--log-level", "warning",
                "--no-access-log", ASGI_APP]  # fmt: skip
    return [str(PEERS_BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers", "1",
            "--log-level", "warning", WSGI_APP]  # fmt: skip


class Server:
    """One server process; its own session, so a stop reaches its workers."""

    def __init__(self, name: str, diorite_python: str, logs: Path, extra: tuple[str, ...] = ()):
        self.name = name
        self.port = free_port()
        self.log_path = logs / f"{name}-{self.port}.log"
        self._log = open(self.log_path, "wb")
        env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            server_command(name, self.port, diorite_python, list(extra)),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env=env,
            start_new_session=True,
        )
        deadline = time.monotonic() + 20
        while not h1.answers(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{name} did not start:\n{self.log_path.read_text()}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self._log.close()


def connect_after_sigterm(server: Server) -> str:
    """A slow request in flight, SIGTERM, then a new client: is it refused
    at once or left waiting? (The server is gone afterwards.)"""
    slow: list[str] = []

    def slow_request():
        ex = h1.exchange(server.port, [h1.request("GET /slow HTTP/1.1\nHost: probe")])
        slow.append(h1.describe(ex))

    worker = threading.Thread(target=slow_request)
    worker.start()
    time.sleep(0.5)
    server.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    start = time.monotonic()
    try:
        ex = h1.exchange(server.port, [h1.request("GET / HTTP/1.1\nHost: probe")])
        late = h1.describe(ex)
    except ConnectionRefusedError:
        late = "refused"
    late += f" in {time.monotonic() - start:.1f} s"
    worker.join()
    try:
        server.proc.wait(30)
        gone = "exited"
    except subprocess.TimeoutExpired:
        gone = "still running after 30 s"
    return f"new: {late}; in flight: {slow[0]}; {gone}"


@dataclass
class Probe:
    name: str
    title: str
    run: Callable[[int], str] | None
    # Set, the probe runs against Diorite alone, started with these flags
    # (when its --help lists the first), and is left out for the peers.
    diorite_flags: tuple[str, ...] = ()


PROBES = [
    Probe("header-200k", "one 200 KB header line", h1.big_header_line),
    Probe("headers-10000", "10,000 headers", h1.many_headers(10_000)),
    Probe("headers-101", "101 headers", h1.many_headers(101)),
    Probe("uri-100k", "100 KB URI", h1.long_target(100_000)),
    Probe("request-line-9k", "request line of 9 KiB", h1.long_target(9 * 1024)),
    Probe("upload-256m", "256 MiB upload, Content-Length", h1.upload),
    Probe(
        "upload-256m-limited",
        "256 MiB upload, diorite --max-body-size 1m",
        h1.upload,
        ("--max-body-size", "1m"),
    ),
    Probe("chunked-2m", "2 MiB chunked upload", h1.chunked_upload),
    Probe("chunk-size-bad", "chunk size `zz`", h1.bad_chunk(b"zz")),
    Probe("chunk-size-overflow", "chunk size 2^72", h1.bad_chunk(b"ffffffffffffffffff")),
    Probe("cl-te", "smuggling: Content-Length + chunked", h1.cl_te),
    Probe("two-cl", "smuggling: two Content-Lengths", h1.two_content_lengths),
    Probe("garbage", "garbage request line", h1.garbage),
    Probe("slowloris", "slowloris (1 header byte/s)", h1.slowloris),
    Probe("slow-body", "request body at 1 byte/s", h1.slow_body),
    Probe("idle-keep-alive", "idle keep-alive connection", h1.idle_keep_alive),
    Probe("silent", "connection that sends nothing", h1.silent),
    Probe("h2-continuation-flood", "h2: CONTINUATION flood", h2.continuation_flood),
    Probe("h2-oversize-headers", "h2: 256 KiB header list", h2.oversize_header_list),
    Probe("h2-rapid-reset", "h2: rapid reset, 5000 streams", h2.rapid_reset),
    Probe("h2-ping-flood", "h2: 100,000 PINGs, ACKs unread", h2.flood(h2.PING, 100_000)),
    Probe("h2-settings-flood", "h2: 100,000 SETTINGS, ACKs unread", h2.flood(h2.SETTINGS, 100_000)),
    Probe("h2-idle", "h2: idle connection", h2.idle_h2),
]
SIGTERM_PROBE = Probe("sigterm", "new client after SIGTERM, slow request in flight", None)


# Memory growth during a probe worth a mention in its cell, in MiB: well
# above what a server's allocator keeps from one request.
GROWTH_SHOWN = 20


def measured(server: Server, probe: Probe) -> str:
    """The probe's cell, with the server's memory growth when it is large."""
    rss, done = [tree_rss_mib(server.proc.pid)], threading.Event()

    def sample():
        while not done.wait(0.1):
            rss.append(tree_rss_mib(server.proc.pid))

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        cell = probe.run(server.port)
    except Exception as err:  # a probe's own failure must not hide the rest
        cell = f"probe error: {type(err).__name__}: {err}"
    finally:
        done.set()
        sampler.join()
    if max(rss) - rss[0] > GROWTH_SHOWN:
        cell += f" (RSS +{max(rss) - rss[0]:.0f} MiB)"
    return cell


def run_server(name: str, probes: list[Probe], args, logs: Path, table: dict) -> None:
    server = Server(name, args.diorite_python, logs)
    try:
        for probe in probes:
            if probe is SIGTERM_PROBE:
                table[probe.name, name] = connect_after_sigterm(server)
                continue
            if probe.diorite_flags:
                table[probe.name, name] = with_flags(name, probe, args, logs)
                continue
            cell = measured(server, probe)
            if server.proc.poll() is not None:
                cell += " **server died**"
            elif not h1.answers(server.port):
                cell += " **then unresponsive**"
            if "**" in cell:
                server.stop()
                server = Server(name, args.diorite_python, logs)
            table[probe.name, name] = cell
            print(f"{name:9} {probe.name:22} {cell}", file=sys.stderr, flush=True)
    finally:
        server.stop()


def with_flags(name: str, probe: Probe, args, logs: Path) -> str:
    if name != "diorite":
        return "n/a"
    help_text = subprocess.run(
        [args.diorite_python, "-m", "diorite", "--help"], capture_output=True, text=True
    ).stdout
    if probe.diorite_flags[0] not in help_text:
        return f"no {probe.diorite_flags[0]} yet"
    server = Server(name, args.diorite_python, logs, probe.diorite_flags)
    try:
        return measured(server, probe)
    finally:
        server.stop()


def versions(args) -> dict[str, str]:
    out = subprocess.run(
        [args.diorite_python, "-m", "diorite", "--version"], capture_output=True, text=True
    ).stdout.split()
    found = {"diorite": out[-1] if out else "?"}
    for name in SERVERS[1:]:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--diorite-python", default=str(ROOT / ".venv" / "bin" / "python"))
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--only", action="append", help="probe name (repeatable)")
    parser.add_argument("--out", type=Path, help="also write the table to this file")
    args = parser.parse_args()
    servers = args.servers.split(",")
    probes = [*PROBES, SIGTERM_PROBE]
    if args.only:
        unknown = set(args.only) - {p.name for p in probes}
        if unknown:
            parser.error(f"unknown probe(s) {sorted(unknown)}; known: {[p.name for p in probes]}")
        probes = [p for p in probes if p.name in args.only]
    table: dict[tuple[str, str], str] = {}
    logs = Path(tempfile.mkdtemp(prefix="diorite-probes-"))
    started = time.monotonic()
    threads = [
        threading.Thread(target=run_server, args=(name, probes, args, logs, table))
        for name in servers
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    found = versions(args)
    lines = [
        f"Probes run {datetime.date.today()} on {platform.machine()} Linux, "
        f"{os.cpu_count()} cores, Python {platform.python_version()} for the peers, "
        f"in {time.monotonic() - started:.0f} s.",
        "",
        "| probe | " + " | ".join(f"{s} {found.get(s, '')}" for s in servers) + " |",
        "|---|" + "---|" * len(servers),
    ]
    for p in probes:
        cells = " | ".join(table.get((p.name, s), "") for s in servers)
        lines.append(f"| {p.title} | {cells} |")
    panics = [
        f"{log.name}: {line.strip()}"
        for log in sorted(logs.glob("*.log"))
        for line in log.read_text(errors="replace").splitlines()
        if "panic" in line.lower()
    ]
    lines += ["", f"Server logs: {logs}. Lines with 'panic': {len(panics)}.", *panics]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
