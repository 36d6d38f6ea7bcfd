"""Websockets against the real server with the `websockets` client library:
echo up to 16 MiB, many concurrent connections, close codes both ways,
subprotocols, refusals before accept, the size limit, back-pressure, sends
from other tasks and threads, clients that vanish, and graceful shutdown."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import struct
import threading
import time

import httpx
import pytest
import websockets
from conftest import hold_idle_connections
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

ASGI = ("asgi", "asginl")


def wait_for(predicate, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def ws_url(server, path: str) -> str:
    return f"ws://{server.host}:{server.port}{path}"


def events(server) -> dict:
    return httpx.get(f"{server.url}/events").json()


def wait_event(server, match: dict, timeout: float = 10.0) -> dict:
    """The first recorded event with all of `match`'s items."""
    found = []

    def seen():
        found[:] = [
            e for e in events(server)["events"] if all(e.get(k) == v for k, v in match.items())
        ]
        return bool(found)

    wait_for(seen, timeout=timeout, what=f"event {match}")
    return found[0]


def open_raw(server, path: str) -> socket.socket:
    """A websocket opened by hand on a plain socket (so the test, not a
    client library, decides how it ends). Returns after the 101."""
    s = socket.create_connection((server.host, server.port), timeout=10)
    s.sendall(
        f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(1)
        assert chunk, "connection closed during the handshake"
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return s


def hang_up(s: socket.socket) -> None:
    """Drops the TCP connection with a reset, without a close frame."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


@pytest.fixture(params=ASGI)
def asgi_ws(request, serve):
    return serve("ws_asgi_app:app", "--interface", request.param)


def test_echo_text_and_binary_up_to_16_mib(asgi_ws):
    with connect(ws_url(asgi_ws, "/echo"), max_size=None) as ws:
        ws.send("héllo")
        assert ws.recv() == "héllo"
        for size in (0, 1, 125, 126, 65535, 65536, 1024 * 1024, 16 * 1024 * 1024):
            payload = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
            ws.send(payload)
            assert ws.recv() == payload
        ws.send("é" * (4 * 1024 * 1024))
        assert ws.recv() == "é" * (4 * 1024 * 1024)


def test_fragmented_message_is_reassembled(asgi_ws):
    with connect(ws_url(asgi_ws, "/echo")) as ws:
        ws.send(iter(["frag", "mented ", "text"]))
        assert ws.recv() == "fragmented text"
        ws.send(iter([b"\x00" * 1000, b"\x01" * 1000]))
        assert ws.recv() == b"\x00" * 1000 + b"\x01" * 1000


def test_200_concurrent_connections_echo_50_messages_each(asgi_ws):
    async def client(n: int) -> int:
        async with websockets.connect(ws_url(asgi_ws, "/echo")) as ws:
            for i in range(50):
                message = f"client {n} message {i}" if i % 2 else f"{n}:{i}".encode()
                await ws.send(message)
                assert await ws.recv() == message
        return n

    async def main():
        return await asyncio.gather(*(client(n) for n in range(200)))

    assert sorted(asyncio.run(main())) == list(range(200))
    wait_for(lambda: len(events(asgi_ws)["events"]) == 200, what="200 disconnects")
    assert {e["code"] for e in events(asgi_ws)["events"]} == {1000}


def test_server_close_with_4001_reaches_the_client(asgi_ws):
    with connect(ws_url(asgi_ws, "/close-4001")) as ws:
        ws.send("please close")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv()
    assert closed.value.rcvd.code == 4001
    assert closed.value.rcvd.reason == "go away"
    # The app's next receive() after its close is the disconnect.
    event = wait_event(asgi_ws, {"path": "/close-4001"})
    assert event == {"path": "/close-4001", "type": "websocket.disconnect", "code": 4001}


def test_client_close_reaches_the_app_as_disconnect(asgi_ws):
    with connect(ws_url(asgi_ws, "/echo")) as ws:
        ws.send("x")
        ws.recv()
        ws.close(code=4321, reason="client done")
    event = wait_event(asgi_ws, {"path": "/echo"})
    assert (event["code"], event["reason"]) == (4321, "client done")


def test_client_vanishing_is_a_1006_disconnect(asgi_ws):
    hang_up(open_raw(asgi_ws, "/wait-close"))
    assert wait_event(asgi_ws, {"path": "/wait-close"})["code"] == 1006


def test_subprotocol_negotiation(asgi_ws):
    with connect(ws_url(asgi_ws, "/echo"), subprotocols=["graphql-ws", "chat"]) as ws:
        assert ws.subprotocol == "graphql-ws"
        assert ws.response.headers["sec-websocket-protocol"] == "graphql-ws"
    with connect(ws_url(asgi_ws, "/echo")) as ws:
        assert ws.subprotocol is None
        assert "sec-websocket-protocol" not in ws.response.headers


def test_scope_and_accept_headers(asgi_ws):
    with connect(ws_url(asgi_ws, "/scope?x=1&y=%20"), subprotocols=["a", "b"]) as ws:
        info = json.loads(ws.recv())
        assert ws.response.headers["x-extra"] == "yes"
        assert ws.response.headers["set-cookie"] == "a=1"
    assert info["type"] == "websocket"
    assert info["scheme"] == "ws"
    assert info["path"] == "/scope"
    assert info["raw_path"] == "/scope"
    assert info["query_string"] == "x=1&y=%20"
    assert info["http_version"] == "1.1"
    assert info["subprotocols"] == ["a", "b"]
    assert info["client"][0] == "127.0.0.1"
    assert "sec-websocket-key" in info["headers"] and "upgrade" in info["headers"]
    assert info["has_method"] is False
    assert info["extensions"] == ["websocket.http.response"]


@pytest.mark.parametrize(
    ("path", "status", "body"),
    [
        ("/reject", 403, None),
        ("/no-accept", 403, None),
        ("/raise-before", 500, None),
        ("/deny", 418, b"no tea"),
    ],
)
def test_refusals_before_accept(serve, path, status, body):
    server = serve("ws_asgi_app:app")
    with pytest.raises(InvalidStatus) as refused, connect(ws_url(server, path)):
        pass
    response = refused.value.response
    assert response.status_code == status
    if body is not None:
        assert bytes(response.body) == body
        assert response.headers["content-type"] == "text/plain"
    # The server goes on serving websockets.
    with connect(ws_url(server, "/echo")) as ws:
        ws.send("still here")
        assert ws.recv() == "still here"
    if path == "/raise-before":
        server.wait_log("RuntimeError: boom before accept")


def test_app_error_after_accept_closes_with_1011_and_logs(serve):
    server = serve("ws_asgi_app:app")
    with connect(ws_url(server, "/raise-after")) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv()
    assert closed.value.rcvd.code == 1011
    log = server.wait_log("RuntimeError: boom after accept")
    assert "Traceback" in log


def test_message_size_limit_closes_with_1009(serve):
    server = serve("ws_asgi_app:app", "--ws-max-message-size", "1024")
    with connect(ws_url(server, "/echo")) as ws:
        ws.send(b"a" * 1024)
        assert ws.recv() == b"a" * 1024
        ws.send(b"a" * 1025)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv()
    assert closed.value.rcvd.code == 1009
    assert wait_event(server, {"path": "/echo"})["code"] == 1009


def test_unsupported_version_gets_426(serve):
    server = serve("ws_asgi_app:app")
    answer = server.raw(
        b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n"
        b"Connection: close\r\n\r\n"
    )
    head = answer.split(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"http/1.1 426")
    assert b"sec-websocket-version: 13" in head


def test_key_that_is_not_16_bytes_of_base64_gets_400(serve):
    server = serve("ws_asgi_app:app")
    answer = server.raw(
        b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: not-a-nonce\r\nSec-WebSocket-Version: 13\r\n"
        b"Connection: close\r\n\r\n"
    )
    assert answer.lower().startswith(b"http/1.1 400")


def test_no_ws_passes_upgrades_to_the_app_as_http(serve):
    server = serve("ws_asgi_app:app", "--no-ws")
    headers = {
        "upgrade": "websocket",
        "connection": "upgrade",
        "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
        "sec-websocket-version": "13",
    }
    response = httpx.get(f"{server.url}/echo", headers=headers)
    assert response.status_code == 200
    assert response.text == "plain http, upgrade=websocket"


@pytest.mark.parametrize(
    ("app", "flags"),
    [("ws_asgi_app:app", ()), ("ws_rsgi_app:app", ("--interface", "rsgi"))],
    ids=["asgi", "rsgi"],
)
def test_idle_websockets_hold_little_memory(serve, app, flags):
    """The handshake's header values share hyper's read buffer (8 KiB or
    more); what an open websocket keeps of its request is copied out of
    it. About 26 KiB per idle websocket before, 18 after; 15 once its
    outgoing queue started empty, and 8-9 since tungstenite reads into a
    2 KiB buffer and only a read that fills it reads ahead into a larger
    one, given back when drained; 7.6-8.1 since the session keeps nothing
    of the handshake and the frame task's future shrank to 1 KiB
    (bench/results/idle.md)."""
    count = 2000
    upgrade = (
        b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    server = serve(app, *flags)
    warm = hold_idle_connections(server, 1, upgrade, status=101)
    before = server.rss_mib()
    held = hold_idle_connections(server, count, upgrade, status=101)
    try:
        time.sleep(1)
        per_websocket = (server.rss_mib() - before) * 1024 / count
        assert per_websocket < 10, f"{per_websocket:.1f} KiB per idle websocket"
    finally:
        for s in held + warm:
            s.close()


QUIET_UPGRADE = (
    b"GET /quiet HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_a_spike_of_websockets_empties_the_free_lists_once_over(serve, loop):
    """Python's free lists (and uvloop's) keep objects freed at a spike's
    height, which hold pymalloc's arenas (python/diorite/memory.py). Once
    the spike has passed and the count of allocated blocks has settled,
    the lists are emptied; after 3,000 websockets they held 2,000-2,600
    blocks."""
    if loop == "uvloop":
        pytest.importorskip("uvloop")
    count = 3000  # 30 blocks each: 90,000, above memory.SPIKE_BLOCKS
    server = serve("ws_asgi_app:app", "--loop", loop, "--log-level", "debug")
    held = hold_idle_connections(server, count, QUIET_UPGRADE, status=101)
    time.sleep(1.5)  # the once-a-second check sees the peak
    assert "a spike has passed" not in server.log()
    for s in held:
        s.close()
    log = server.wait_log("a spike has passed")
    freed = int(re.search(r"free lists emptied in [\d.]+ ms, (\d+) blocks freed", log)[1])
    assert freed > 1000, log


def test_with_frozen_objects_the_free_lists_are_emptied_once_a_minute(serve):
    """An app that froze objects (or Python 3.12, which starts with some)
    keeps them frozen: the lists are emptied by a full collection instead,
    which under bursts of load waits its turn (memory.FULL_COLLECTION_EVERY)."""
    server = serve("ws_asgi_app:app", "--log-level", "debug", env={"GC_FREEZE": "1"})
    for spike in range(2):
        held = hold_idle_connections(server, 3000, QUIET_UPGRADE, status=101)
        time.sleep(1.5)
        for s in held:
            s.close()
        if spike == 0:
            server.wait_log("a spike has passed")
    time.sleep(5)  # settled for seconds: the first spike's trim came in 1-3
    assert server.log().count("a spike has passed") == 1, server.log()


def test_slow_reader_makes_sends_wait_instead_of_buffering(serve):
    server = serve("ws_asgi_app:app")
    before = server.rss_mib()
    with connect(ws_url(server, "/flood"), max_size=None, max_queue=1) as ws:
        # The client reads nothing for a while: the app must be held back.
        time.sleep(2)
        held = events(server)["progress"]["flood_sent"]
        grown = server.rss_mib() - before
        assert held < 40, f"{held} MiB were sent to a client that reads nothing"
        assert grown < 100, f"the worker grew {grown:.0f} MiB"
        received = 0
        while received < 300:
            assert len(ws.recv()) == 1024 * 1024
            received += 1
    assert events(server)["progress"]["flood_sent"] == 300


def test_fast_client_and_slow_app_do_not_buffer_without_bound(serve):
    """A client that sends faster than the app receives is slowed down by
    TCP: the server stops reading once 1 MiB waits for the app."""
    server = serve("ws_asgi_app:app")
    before = server.rss_mib()
    chunk = b"m" * (1024 * 1024)
    with connect(ws_url(server, "/late-reader?150"), max_size=None) as ws:
        sender = threading.Thread(target=lambda: [ws.send(chunk) for _ in range(150)])
        sender.start()
        time.sleep(1.5)  # the app receives nothing for 2 s
        grown = server.rss_mib() - before
        assert grown < 80, f"the worker grew {grown:.0f} MiB holding unread messages"
        sender.join(30)
        assert ws.recv(timeout=30) == f"150 {150 * len(chunk)}"


def test_ping_is_answered(asgi_ws):
    with connect(ws_url(asgi_ws, "/echo")) as ws:
        assert ws.ping(b"are you there").wait(timeout=5)
        ws.send("after ping")
        assert ws.recv() == "after ping"


# Keep-alive pings (--ws-ping-interval, --ws-ping-timeout)

PING, PONG, CLOSE = 0x9, 0xA, 0x8
#: Short enough that a test sees several pings, long enough for a busy machine.
FAST_PINGS = ("--ws-ping-interval", "200ms", "--ws-ping-timeout", "600ms")


def read_frame(s: socket.socket) -> tuple[int, bytes]:
    """One frame from the server (unmasked, short): its opcode and payload."""

    def exactly(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = s.recv(n - len(data))
            if not chunk:
                raise ConnectionError("the server closed the connection")
            data += chunk
        return data

    first, second = exactly(2)
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", exactly(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", exactly(8))
    return first & 0x0F, exactly(length)


def send_frame(s: socket.socket, opcode: int, payload: bytes = b"") -> None:
    """A masked (client) frame of at most 125 bytes."""
    mask = b"\x01\x02\x03\x04"
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    s.sendall(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked)


class PingLog(logging.Handler):
    """Counts the pings the `websockets` client logs receiving (it answers
    them itself and offers no other way to see them)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.pings = 0

    def emit(self, record):
        if record.getMessage().startswith("< PING"):
            self.pings += 1


@pytest.fixture(params=["asgi", "rsgi"])
def ping_server(request, serve):
    """A server with FAST_PINGS, and its interface."""
    app = "ws_asgi_app:app" if request.param == "asgi" else "ws_rsgi_app:app"
    return serve(app, "--interface", request.param, *FAST_PINGS), request.param


def test_a_client_that_answers_pings_stays_connected(ping_server):
    server, _ = ping_server
    log = PingLog()
    client_logger = logging.getLogger("test.websockets.client")
    client_logger.addHandler(log)
    client_logger.setLevel(logging.DEBUG)
    # The client's own pings off: only the server's are counted.
    with connect(ws_url(server, "/echo"), ping_interval=None, logger=client_logger) as ws:
        time.sleep(2.0)  # ten intervals, more than three timeouts
        ws.send("still here")
        assert ws.recv(timeout=5) == "still here"
    assert 4 <= log.pings <= 14, log.pings


@pytest.mark.parametrize("pong", [False, True], ids=["silent", "unsolicited-pong-to-app"])
def test_a_client_that_never_answers_is_closed_with_1011(ping_server, pong):
    server, interface = ping_server
    s = open_raw(server, "/echo")
    if pong:
        # An unsolicited pong is not a message for the app (the echo app
        # would echo it), and does not answer a ping sent after it.
        send_frame(s, PONG, b"unasked")
    opcode, _ = read_frame(s)
    assert opcode == PING
    pinged = time.monotonic()
    while opcode == PING:
        opcode, payload = read_frame(s)
    waited = time.monotonic() - pinged
    assert opcode == CLOSE
    assert struct.unpack("!H", payload[:2])[0] == 1011
    assert payload[2:] == b"keepalive ping timeout"
    assert 0.4 <= waited <= 3.0, waited
    # The server does not wait for the client's close frame: it is gone.
    assert s.recv(1) == b""
    s.close()
    if interface == "asgi":
        assert wait_event(server, {"path": "/echo"}) == {
            "path": "/echo",
            "code": 1011,
            "reason": "keepalive ping timeout",
        }
    else:
        assert wait_event(server, {"path": "/echo"}) == {
            "path": "/echo",
            "closed": True,
            "data": None,
        }


def test_pings_off(serve):
    server = serve("ws_asgi_app:app", "--ws-ping-interval", "0")
    s = open_raw(server, "/echo")
    s.settimeout(1.0)
    with pytest.raises(TimeoutError):
        s.recv(1)
    send_frame(s, 0x1, b"no pings")
    assert read_frame(s) == (0x1, b"no pings")
    hang_up(s)


def test_a_client_the_app_is_not_reading_is_not_closed_by_pings(serve):
    """While the app is behind, the server stops reading the socket, and
    the client's pongs wait unread (the client may not even get to send
    them while its own sends are held up): that is not the client's fault."""
    server = serve("ws_asgi_app:app", "--ws-ping-interval", "200ms", "--ws-ping-timeout", "500ms")
    chunk = b"m" * (1024 * 1024)
    with connect(ws_url(server, "/late-reader?40"), max_size=None) as ws:
        sender = threading.Thread(target=lambda: [ws.send(chunk) for _ in range(40)])
        sender.start()
        # The app receives nothing for 2 s: four timeouts.
        assert ws.recv(timeout=30) == f"40 {40 * len(chunk)}"
        sender.join(30)


def test_sends_from_other_tasks(asgi_ws):
    with connect(ws_url(asgi_ws, "/tasks")) as ws:
        got = []
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                got.append(ws.recv())
    assert closed.value.rcvd.code == 1000
    assert sorted(got) == sorted(f"task {n} message {i}" for n in range(5) for i in range(20))


def test_sends_from_a_background_thread(asgi_ws):
    with connect(ws_url(asgi_ws, "/thread?300")) as ws:
        assert [ws.recv() for _ in range(300)] == [f"update {i}" for i in range(300)]
    assert wait_event(asgi_ws, {"path": "/thread", "done": 300})


def test_clients_vanishing_mid_send_from_threads_and_floods(serve):
    """The ownership stress: clients drop the connection while the app sends
    from background threads and from a tight loop; nothing may panic, leak
    the app's tasks or stop the server."""
    server = serve("ws_asgi_app:app")
    sockets = []
    for n in range(30):
        s = open_raw(server, "/thread?100000" if n % 2 else "/flood")
        assert s.recv(1)  # the app is sending
        sockets.append(s)
    for s in sockets:
        hang_up(s)
    wait_for(
        lambda: len([e for e in events(server)["events"] if "stopped" in e or "error" in e]) == 30,
        what="every producer to stop",
        timeout=20,
    )
    with connect(ws_url(server, "/echo")) as ws:
        ws.send("alive")
        assert ws.recv() == "alive"
    server.assert_clean_log()


def test_graceful_shutdown_closes_websockets_with_1001(serve):
    server = serve("ws_asgi_app:app")
    with connect(ws_url(server, "/wait-close")) as ws:
        server.signal()
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd.code == 1001
    assert server.proc.wait(10) == 0


# RSGI


@pytest.fixture
def rsgi_ws(serve):
    return serve("ws_rsgi_app:app", "--interface", "rsgi")


def test_rsgi_echo_and_close_message(rsgi_ws):
    with connect(ws_url(rsgi_ws, "/echo"), max_size=None) as ws:
        ws.send("héllo")
        assert ws.recv() == "héllo"
        big = b"\x01" * (16 * 1024 * 1024)
        ws.send(big)
        assert ws.recv() == big
    assert wait_event(rsgi_ws, {"path": "/echo"}) == {"path": "/echo", "closed": True, "data": None}


def test_rsgi_concurrent_echo(rsgi_ws):
    async def client(n: int):
        async with websockets.connect(ws_url(rsgi_ws, "/echo")) as ws:
            for i in range(50):
                await ws.send(f"{n}-{i}")
                assert await ws.recv() == f"{n}-{i}"

    async def main():
        await asyncio.gather(*(client(n) for n in range(200)))

    asyncio.run(main())


def test_rsgi_scope_and_close_status(rsgi_ws):
    with connect(ws_url(rsgi_ws, "/scope?a=1")) as ws:
        info = json.loads(ws.recv())
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv()
    assert closed.value.rcvd.code == 4001
    assert info == {
        "proto": "ws",
        "http_version": "1.1",
        "scheme": "http",
        "method": "GET",
        "path": "/scope",
        "query_string": "a=1",
        "upgrade": "websocket",
    }


def test_rsgi_refusals_and_errors(rsgi_ws):
    for path, status in (("/reject", 403), ("/raise-before", 500)):
        with pytest.raises(InvalidStatus) as refused, connect(ws_url(rsgi_ws, path)):
            pass
        assert refused.value.response.status_code == status
    with connect(ws_url(rsgi_ws, "/raise-after")) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv()
    assert closed.value.rcvd.code == 1011
    rsgi_ws.wait_log("RuntimeError: boom after accept")
