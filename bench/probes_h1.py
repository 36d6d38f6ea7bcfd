"""The HTTP/1.1 probes of bench/probes.py, and the socket helpers the
HTTP/2 ones share: each probe takes a port and returns what the server did,
as the table's cell says it."""

from __future__ import annotations

import re
import select
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

# How long a probe waits for an answer before calling the server hung, and
# how long the probes that measure a server's patience may hold a
# connection (above the 30 s that hyper, Granian and Gunicorn use).
ANSWER_TIMEOUT = 10.0
PATIENCE = 40.0


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


def slow_body(port: int) -> str:
    """A complete head, then the body one byte a second: a header timeout
    does not cover this."""
    sock, start = connect(port), time.monotonic()
    sock.sendall(b"POST /drain HTTP/1.1\r\nHost: probe\r\nContent-Length: 1000\r\n\r\n")
    try:
        return held_for(sock, start, lambda: sock.sendall(b"a"))
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
