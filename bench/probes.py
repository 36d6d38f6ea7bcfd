"""Attack probes against diorite and its peers, and a Markdown table of what
each server did.

    python bench/probes.py [--diorite-python .venv/bin/python]
        [--servers diorite,granian,uvicorn,gunicorn] [--only NAME] [--out FILE]

Each server runs as a real process, one worker, on a free port, serving
bench/apps/probe_app.py (ASGI; its WSGI twin for Gunicorn). Diorite comes
from --diorite-python and runs with its defaults: no limit flags, so the
table shows what a user gets without tuning. The peers come from the
Python running this script (pip install granian 'uvicorn[standard]'
gunicorn h2). The probes speak raw HTTP/1.1 over sockets and raw HTTP/2
frames (hpack, from the h2 package, encodes the headers), since client
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
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import hpack
from harness import tree_rss_mib
from run import free_port

ROOT = Path(__file__).resolve().parent.parent
PEERS_BIN = Path(sys.executable).parent
SERVERS = ("diorite", "granian", "uvicorn", "gunicorn")
ASGI_APP = "bench.apps.probe_app:app"
WSGI_APP = "bench.apps.probe_app:wsgi_app"

# How long a probe waits for an answer before calling the server hung, and
# how long the probes that measure a server's patience may hold a
# connection (above the 30 s that hyper, Granian and Gunicorn use).
ANSWER_TIMEOUT = 10.0
PATIENCE = 40.0


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

    def __init__(self, name: str, diorite_python: str, logs: Path, extra: list[str] = ()):
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
        while not answers(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{name} did not start:\n{self.log_path.read_text()}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self._log.close()


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.settimeout(None)
    return sock


def answers(port: int, timeout: float = 5.0) -> bool:
    """Whether a plain GET on a new connection gets a 200."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n")
            return sock.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


# -- HTTP/1.1 ------------------------------------------------------------


@dataclass
class Exchange:
    data: bytes = b""
    end: str = "timeout"  # eof, reset or timeout
    elapsed: float = 0.0


def exchange(port: int, parts: Iterable[bytes], timeout: float = ANSWER_TIMEOUT) -> Exchange:
    """Sends `parts` from a thread while reading, so that an answer given
    before the request is all sent (a 431 for a huge head) is still read."""
    result = Exchange()
    start = time.monotonic()
    sock = connect(port)

    def sender():
        try:
            for part in parts:
                sock.sendall(part)
        except OSError:
            pass  # the server closed first; what it answered is what counts

    threading.Thread(target=sender, daemon=True).start()
    deadline = start + timeout
    try:
        while True:
            # Once a whole response head is in, a kept-alive connection
            # has nothing more to say unless a second response follows.
            if b"\r\n\r\n" in result.data:
                deadline = min(deadline, time.monotonic() + 1.0)
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([sock], [], [], left)[0]:
                break
            chunk = sock.recv(65536)
            if not chunk:
                result.end = "eof"
                break
            result.data += chunk
    except ConnectionResetError:
        result.end = "reset"
    finally:
        result.elapsed = time.monotonic() - start
        shut(sock)
    return result


def shut(sock: socket.socket) -> None:
    # shutdown wakes a sender thread blocked in sendall; close alone may not.
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


def describe(ex: Exchange, timeout: float = ANSWER_TIMEOUT) -> str:
    statuses = re.findall(rb"HTTP/1\.[01] (\d{3})", ex.data)
    if not statuses:
        return {"eof": "closed", "reset": "reset"}.get(ex.end, f"hung ({timeout:.0f} s)")
    text = " + ".join(s.decode() for s in statuses)
    if len(statuses) > 1:
        text = f"{len(statuses)} responses: {text}"
    return text + {"eof": ", closed", "reset": ", reset"}.get(ex.end, "")


def request(head: str, body: bytes = b"") -> bytes:
    return head.replace("\n", "\r\n").encode("latin-1") + b"\r\n\r\n" + body


def simple(payload: bytes | Callable[[], Iterable[bytes]]) -> Callable[[int], str]:
    def probe(port: int) -> str:
        parts = [payload] if isinstance(payload, bytes) else payload()
        return describe(exchange(port, parts))

    return probe


def big_header_line(port: int) -> str:
    return simple(request("GET / HTTP/1.1\nHost: probe\nX-Big: " + "a" * 200_000))(port)


def many_headers(count: int) -> Callable[[int], str]:
    # Host counts as one of the `count`.
    fields = "".join(f"\nX-H{i}: v" for i in range(count - 1))
    return simple(request("GET / HTTP/1.1\nHost: probe" + fields))


def long_target(length: int) -> Callable[[int], str]:
    return simple(request(f"GET /?{'a' * length} HTTP/1.1\nHost: probe"))


def upload(port: int) -> str:
    """256 MiB with a Content-Length to a route that reads it all."""
    size, mib = 256 << 20, b"\0" * (1 << 20)

    def parts():
        yield request(f"POST /drain HTTP/1.1\nHost: probe\nContent-Length: {size}")
        for _ in range(size >> 20):
            yield mib

    ex = exchange(port, parts(), timeout=120)
    return describe(ex) + body_note(ex)


def chunked_upload(port: int) -> str:
    """2 MiB chunked, in 64 KiB chunks: crosses the 1 MiB a limit would use."""
    chunk = b"\0" * (64 << 10)

    def parts():
        yield request("POST /drain HTTP/1.1\nHost: probe\nTransfer-Encoding: chunked")
        for _ in range(32):
            yield b"10000\r\n" + chunk + b"\r\n"
        yield b"0\r\n\r\n"

    ex = exchange(port, parts(), timeout=60)
    return describe(ex) + body_note(ex)


def body_note(ex: Exchange) -> str:
    """The byte count /drain answered with, when it answered."""
    head, _, body = ex.data.partition(b"\r\n\r\n")
    if head.startswith(b"HTTP/1.1 200") and body.strip().isdigit():
        return f" (app read {int(body) / (1 << 20):.0f} MiB)"
    return ""


def bad_chunk(size_line: bytes) -> Callable[[int], str]:
    head = request("POST /drain HTTP/1.1\nHost: probe\nTransfer-Encoding: chunked")
    return simple(head + size_line + b"\r\nhello\r\n0\r\n\r\n")


def cl_te(port: int) -> str:
    # A front end going by Content-Length sees one request; a back end going
    # by Transfer-Encoding sees two, the second chosen by the attacker.
    smuggled = b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: probe\r\n\r\n"
    head = "POST / HTTP/1.1\nHost: probe\nTransfer-Encoding: chunked\n"
    return simple(request(head + f"Content-Length: {len(smuggled)}", smuggled))(port)


def two_content_lengths(port: int) -> str:
    head = "POST /drain HTTP/1.1\nHost: probe\nContent-Length: 5\nContent-Length: 11"
    return simple(request(head, b"hello world"))(port)


def garbage(port: int) -> str:
    return simple(b"\x16\x03\x01\x00\xa5garbage \xff\xfe\r\n\r\n")(port)


def held_for(sock: socket.socket, start: float, tick: Callable[[], None] | None = None) -> str:
    """How long the server keeps `sock` open (up to PATIENCE), calling
    `tick` once a second (a slowloris's next byte)."""
    status = b""
    try:
        while time.monotonic() - start < PATIENCE:
            if select.select([sock], [], [], 1.0)[0]:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                status = status or chunk[:12]
            elif tick:
                tick()
        else:
            return f"held ≥ {PATIENCE:.0f} s"
    except OSError:
        pass
    answer = f"{status[9:12].decode()} then " if status.startswith(b"HTTP/1.") else ""
    return f"{answer}closed at {time.monotonic() - start:.0f} s"


def slowloris(port: int) -> str:
    sock, start = connect(port), time.monotonic()
    sock.sendall(b"GET / HTTP/1.1\r\nHost: probe\r\n")
    trickle = iter(b"X-Slow: " + b"a" * 1000)
    try:
        return held_for(sock, start, lambda: sock.sendall(bytes([next(trickle)])))
    finally:
        shut(sock)


def idle_keep_alive(port: int) -> str:
    sock = connect(port)
    try:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: probe\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(65536)
        if b"connection: close" in head.lower():
            return "no keep-alive (closed after the response)"
        return held_for(sock, time.monotonic())
    finally:
        shut(sock)


def silent(port: int) -> str:
    sock = connect(port)
    try:
        return held_for(sock, time.monotonic())
    finally:
        shut(sock)


# -- HTTP/2 ----------------------------------------------------------------

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, CONTINUATION = 0, 1, 3, 4, 6, 7, 9
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4
ERRORS = (
    "NO_ERROR PROTOCOL_ERROR INTERNAL_ERROR FLOW_CONTROL_ERROR SETTINGS_TIMEOUT STREAM_CLOSED "
    "FRAME_SIZE_ERROR REFUSED_STREAM CANCEL COMPRESSION_ERROR CONNECT_ERROR ENHANCE_YOUR_CALM "
    "INADEQUATE_SECURITY HTTP_1_1_REQUIRED"
).split()
GET = [(":method", "GET"), (":scheme", "http"), (":authority", "probe"), (":path", "/")]


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return (
        len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload
    )


def literal(name: bytes, value: bytes) -> bytes:
    """An hpack literal field, never indexed, so that every copy costs the
    server its full size."""
    return b"\x10" + hpack_int(len(name)) + name + hpack_int(len(value)) + value


def hpack_int(n: int) -> bytes:
    # 7-bit prefix, no Huffman (RFC 7541, 5.1).
    if n < 127:
        return bytes([n])
    out, n = [127], n - 127
    while n >= 128:
        out.append(n % 128 + 128)
        n //= 128
    return bytes([*out, n])


@dataclass
class H2Result:
    not_h2: str = ""  # what an HTTP/1-only server said to the preface
    goaway: str = ""
    statuses: list[str] = field(default_factory=list)
    resets: int = 0
    acks: dict[int, int] = field(default_factory=dict)
    end: str = "timeout"


def h2_exchange(
    port: int, frames: Iterable[bytes], timeout: float = ANSWER_TIMEOUT, read_after: float = 0.0
) -> H2Result:
    """Sends the preface, then `frames` from a thread, and reads frames
    until the server closes or goes quiet. With `read_after`, reading
    starts only that long after sending began: a flood whose answers the
    client never reads, as an attacker would."""
    result, decoder = H2Result(), hpack.Decoder()
    decoder.max_allowed_table_size = 1 << 16
    sock = connect(port)
    sent = threading.Event()

    def sender():
        try:
            sock.sendall(PREFACE + frame(SETTINGS, 0, 0))
            for f in frames:
                sock.sendall(f)
        except OSError:
            pass
        sent.set()

    threading.Thread(target=sender, daemon=True).start()
    sent.wait(read_after)
    buf, start = b"", time.monotonic()
    deadline, quiet = start + timeout, 1.5
    try:
        while True:
            left = min(deadline, time.monotonic() + quiet) - time.monotonic()
            if left <= 0 or not select.select([sock], [], [], left)[0]:
                if not sent.is_set() and time.monotonic() < deadline:
                    continue
                break
            chunk = sock.recv(1 << 20)
            if not chunk:
                result.end = "eof"
                break
            buf += chunk
            if buf.startswith(b"HTTP/"):
                result.not_h2 = buf[9:12].decode()
                continue
            while len(buf) >= 9 and len(buf) >= 9 + int.from_bytes(buf[:3], "big"):
                size, kind, flags = int.from_bytes(buf[:3], "big"), buf[3], buf[4]
                payload, buf = buf[9 : 9 + size], buf[9 + size :]
                if kind == GOAWAY and not result.goaway:
                    code = int.from_bytes(payload[4:8], "big")
                    result.goaway = ERRORS[code] if code < len(ERRORS) else hex(code)
                elif kind == RST_STREAM:
                    result.resets += 1
                elif kind == HEADERS:
                    fields = dict(decoder.decode(payload))
                    result.statuses.append(fields.get(":status", "?"))
                elif kind in (PING, SETTINGS) and flags & ACK:
                    result.acks[kind] = result.acks.get(kind, 0) + 1
    except ConnectionResetError:
        result.end = "reset"
    finally:
        shut(sock)
    return result


def h2_describe(r: H2Result, sent: int = 0, kind: int = 0) -> str:
    if r.not_h2:
        return f"no HTTP/2 ({r.not_h2})"
    parts = []
    if kind:
        # The ACK to the client's first SETTINGS is not part of the flood.
        acked = r.acks.get(kind, 0) - (kind == SETTINGS)
        parts.append(f"{acked} of {sent} ACKed")
    if r.statuses:
        counts = {s: r.statuses.count(s) for s in sorted(set(r.statuses))}
        parts.append(", ".join(f"{n}× {s}" if n > 1 else s for s, n in counts.items()))
    if r.resets:
        parts.append(f"{r.resets} RST_STREAM")
    if r.goaway:
        parts.append(f"GOAWAY {r.goaway}")
    if r.end != "timeout":
        parts.append({"eof": "closed", "reset": "reset"}[r.end])
    return ", ".join(parts) or "hung"


def request_block(extra: bytes = b"") -> bytes:
    return hpack.Encoder().encode(GET) + extra


def continuation_flood(port: int) -> str:
    """HEADERS without END_HEADERS, then CONTINUATION frames that never end
    the header block (CVE-2024-27316 and its kin)."""
    count = 20_000

    def frames():
        yield frame(HEADERS, END_STREAM, 1, request_block())
        for i in range(count):
            yield frame(CONTINUATION, 0, 1, literal(b"x-c%d" % i, b"a" * 1000))

    return h2_describe(h2_exchange(port, frames()))


def oversize_header_list(port: int) -> str:
    """One complete request whose header list is 256 KiB (64 fields of
    4 KiB), within the frame size rules."""
    block = request_block(b"".join(literal(b"x-h%d" % i, b"a" * 4096) for i in range(64)))
    pieces = [block[i : i + 16384] for i in range(0, len(block), 16384)]
    frames = [frame(HEADERS, END_STREAM, 1, pieces[0])]
    frames += [frame(CONTINUATION, 0, 1, p) for p in pieces[1:-1]]
    frames.append(frame(CONTINUATION, END_HEADERS, 1, pieces[-1]))
    return h2_describe(h2_exchange(port, frames))


def rapid_reset(port: int) -> str:
    """Streams opened and cancelled at once (CVE-2023-44487)."""
    count, block = 5000, request_block()
    frames = (
        frame(HEADERS, END_STREAM | END_HEADERS, s, block)
        + frame(RST_STREAM, 0, s, (8).to_bytes(4, "big"))
        for s in range(1, 2 * count, 2)
    )
    return f"{count} streams: " + h2_describe(h2_exchange(port, frames))


def flood(kind: int, payload: bytes, count: int) -> Callable[[int], str]:
    def probe(port: int) -> str:
        frames = (frame(kind, 0, 0, payload) for _ in range(count))
        return h2_describe(h2_exchange(port, frames, read_after=5.0), count, kind)

    return probe


def idle_h2(port: int) -> str:
    sock = connect(port)
    try:
        sock.sendall(PREFACE + frame(SETTINGS, 0, 0))
        time.sleep(0.5)
        first = sock.recv(65536)
        if first.startswith(b"HTTP/") or not first:
            return f"no HTTP/2 ({first[9:12].decode() or 'closed'})"
        sock.sendall(frame(SETTINGS, ACK, 0))
        return held_for(sock, time.monotonic())
    finally:
        shut(sock)


# -- Shutdown ----------------------------------------------------------------


def connect_after_sigterm(server: Server) -> str:
    """A slow request in flight, SIGTERM, then a new client: is it refused
    at once or left waiting? (The server is gone afterwards.)"""
    slow: list[str] = []
    worker = threading.Thread(
        target=lambda: slow.append(
            describe(exchange(server.port, [request("GET /slow HTTP/1.1\nHost: probe")]))
        )
    )
    worker.start()
    time.sleep(0.5)
    server.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    start = time.monotonic()
    try:
        late = describe(exchange(server.port, [request("GET / HTTP/1.1\nHost: probe")]))
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
    run: Callable[[int], str]


PROBES = [
    Probe("header-200k", "one 200 KB header line", big_header_line),
    Probe("headers-10000", "10,000 headers", many_headers(10_000)),
    Probe("headers-101", "101 headers", many_headers(101)),
    Probe("uri-100k", "100 KB URI", long_target(100_000)),
    Probe("request-line-9k", "request line of 9 KiB", long_target(9 * 1024)),
    Probe("upload-256m", "256 MiB upload, Content-Length", upload),
    Probe("chunked-2m", "2 MiB chunked upload", chunked_upload),
    Probe("chunk-size-bad", "chunk size `zz`", bad_chunk(b"zz")),
    Probe("chunk-size-overflow", "chunk size 2^72", bad_chunk(b"ffffffffffffffffff")),
    Probe("cl-te", "smuggling: Content-Length + chunked", cl_te),
    Probe("two-cl", "smuggling: two Content-Lengths", two_content_lengths),
    Probe("garbage", "garbage request line", garbage),
    Probe("slowloris", "slowloris (1 header byte/s)", slowloris),
    Probe("idle-keep-alive", "idle keep-alive connection", idle_keep_alive),
    Probe("silent", "connection that sends nothing", silent),
    Probe("h2-continuation-flood", "h2: CONTINUATION flood", continuation_flood),
    Probe("h2-oversize-headers", "h2: 256 KiB header list", oversize_header_list),
    Probe("h2-rapid-reset", "h2: rapid reset", rapid_reset),
    Probe("h2-ping-flood", "h2: 100,000 PINGs, ACKs unread", flood(PING, b"\0" * 8, 100_000)),
    Probe(
        "h2-settings-flood",
        "h2: 100,000 SETTINGS, ACKs unread",
        flood(SETTINGS, b"\x00\x04\x00\x00\xff\xff", 100_000),
    ),
    Probe("h2-idle", "h2: idle connection", idle_h2),
]
SIGTERM_PROBE = Probe("sigterm", "new client after SIGTERM, slow request in flight", None)


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
    if max(rss) - rss[0] > 50:
        cell += f" (RSS +{max(rss) - rss[0]:.0f} MiB)"
    return cell


def run_server(name: str, probes: list[Probe], args, logs: Path, table: dict) -> None:
    server = Server(name, args.diorite_python, logs)
    try:
        for probe in probes:
            if probe is SIGTERM_PROBE:
                table[probe.name, name] = connect_after_sigterm(server)
                continue
            cell = measured(server, probe)
            if server.proc.poll() is not None:
                cell += " **server died**"
            elif not answers(server.port):
                cell += " **then unresponsive**"
            if "**" in cell:
                server.stop()
                server = Server(name, args.diorite_python, logs)
            table[probe.name, name] = cell
            print(f"{name:9} {probe.name:22} {cell}", file=sys.stderr, flush=True)
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
        lines.append(
            f"| {p.title} | " + " | ".join(table.get((p.name, s), "") for s in servers) + " |"
        )
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
