"""Granian's HTTP/1 and HTTP/2 tuning options, seen from a real client: the
HTTP/2 ones through a raw socket and h2's client-side state machine, so
the frames the server sends (SETTINGS, WINDOW_UPDATE, PING) are visible."""

from __future__ import annotations

import socket
import time

import h2.config
import h2.connection
import h2.events
import h2.settings
import httpx
import pytest
from conftest import pipelined_bodies

APP = "http_options_app:app"
SPEC_WINDOW = 65535
MAX_WINDOW = 2**31 - 1


class H2Client:
    """An HTTP/2 (prior knowledge) client that records the events it got."""

    def __init__(self, server, rcvbuf: int | None = None):
        self.sock = socket.socket()
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.connect((server.host, server.port))
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.events: list[tuple[float, h2.events.Event]] = []
        self.closed = False
        self.flush()

    def flush(self) -> None:
        self.sock.sendall(self.conn.data_to_send())

    def receive(self, seconds: float, answer: bool = True, until=None) -> None:
        """Reads frames for up to `seconds` (or until `until(self)` holds),
        answering (PING acks, flow control) unless told not to."""
        deadline = time.monotonic() + seconds
        while not self.closed and not (until and until(self)):
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                return
            if not data:
                self.closed = True
                return
            now = time.monotonic()
            for event in self.conn.receive_data(data):
                self.events.append((now, event))
                if isinstance(event, h2.events.DataReceived) and answer:
                    self.conn.acknowledge_received_data(
                        event.flow_controlled_length, event.stream_id
                    )
            if answer:
                self.flush()

    def of(self, kind) -> list:
        return [event for _, event in self.events if isinstance(event, kind)]

    def times_of(self, kind) -> list[float]:
        return [at for at, event in self.events if isinstance(event, kind)]

    def server_settings(self) -> dict[int, int]:
        changed = self.of(h2.events.RemoteSettingsChanged)
        assert changed, "the server sent no SETTINGS"
        return {code: s.new_value for code, s in changed[0].changed_settings.items()}

    def connection_window(self) -> int:
        """The window the server gave the connection with its WINDOW_UPDATEs."""
        updates = [e for e in self.of(h2.events.WindowUpdated) if e.stream_id == 0]
        return SPEC_WINDOW + sum(e.delta for e in updates)

    def request(self, method: str, path: str, body: bytes | None = None) -> int:
        stream = self.conn.get_next_available_stream_id()
        headers = [(":method", method), (":path", path), (":scheme", "http"), (":authority", "x")]
        self.conn.send_headers(stream, headers, end_stream=body is None)
        if body is not None:
            size = self.conn.max_outbound_frame_size
            for start in range(0, len(body), size):
                self.conn.send_data(stream, body[start : start + size])
            self.conn.end_stream(stream)
        self.flush()
        return stream

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def connect(serve):
    """`connect(server, rcvbuf=None)` opens an H2Client; each is closed
    before the servers stop (an open stream would hold their graceful stop)."""
    clients: list[H2Client] = []

    def open_client(server, rcvbuf: int | None = None) -> H2Client:
        clients.append(H2Client(server, rcvbuf))
        return clients[-1]

    yield open_client
    for client in clients:
        client.close()


def handshake(connect, server) -> H2Client:
    client = connect(server)
    client.receive(5, until=lambda c: c.of(h2.events.RemoteSettingsChanged))
    # The connection's WINDOW_UPDATE follows the SETTINGS at once; give it
    # a moment to arrive.
    client.receive(0.3)
    return client


# Windows and frame size: the SETTINGS and the connection's WINDOW_UPDATE -----


@pytest.mark.parametrize("http", ["auto", "2"])
def test_the_settings_carry_the_window_and_frame_sizes_given(serve, connect, http):
    server = serve(
        APP,
        "--http",
        http,
        "--http2-initial-stream-window-size",
        "3000000",
        "--http2-initial-connection-window-size",
        "5000000",
        "--http2-max-frame-size",
        "65536",
    )
    client = handshake(connect, server)
    settings = client.server_settings()
    assert settings[h2.settings.SettingCodes.INITIAL_WINDOW_SIZE] == 3_000_000
    assert settings[h2.settings.SettingCodes.MAX_FRAME_SIZE] == 65536
    assert client.connection_window() == 5_000_000
    # The server takes frames as large as it said.
    stream = client.request("POST", "/echo", b"y" * 60000)
    assert client.conn.max_outbound_frame_size == 65536
    client.receive(5, until=lambda c: c.of(h2.events.StreamEnded))
    body = b"".join(e.data for e in client.of(h2.events.DataReceived) if e.stream_id == stream)
    assert body == b"y" * 60000


def test_the_defaults_are_hypers(serve, connect):
    client = handshake(connect, serve(APP))
    settings = client.server_settings()
    assert settings[h2.settings.SettingCodes.INITIAL_WINDOW_SIZE] == 1024 * 1024
    assert settings[h2.settings.SettingCodes.MAX_FRAME_SIZE] == 16384
    assert client.connection_window() == 1024 * 1024


# Adaptive flow control ------------------------------------------------------


@pytest.mark.parametrize("adaptive", [True, False])
def test_adaptive_window_starts_small_and_measures_with_pings(serve, connect, adaptive):
    flag = "--http2-adaptive-window" if adaptive else "--no-http2-adaptive-window"
    client = handshake(connect, serve(APP, flag))
    settings = client.server_settings()
    window = settings[h2.settings.SettingCodes.INITIAL_WINDOW_SIZE]
    assert window == (SPEC_WINDOW if adaptive else 1024 * 1024)
    assert client.connection_window() == (SPEC_WINDOW if adaptive else 1024 * 1024)
    # Data received starts a bandwidth-delay measurement: a PING.
    client.request("POST", "/echo", b"z" * 30000)
    client.receive(5, until=lambda c: c.of(h2.events.StreamEnded))
    client.receive(0.3)
    assert bool(client.of(h2.events.PingAckReceived) or client.of(h2.events.PingReceived)) is (
        adaptive
    )


# Keep-alive pings -------------------------------------------------------------


@pytest.mark.parametrize("http", ["auto", "2"])
def test_keep_alive_pings_come_at_the_interval(serve, connect, http):
    server = serve(
        APP,
        "--http",
        http,
        "--http2-keep-alive-interval",
        "300ms",
        "--http2-keep-alive-timeout",
        "500ms",
    )
    client = handshake(connect, server)
    start = time.monotonic()
    client.receive(2.0)
    pings = client.times_of(h2.events.PingReceived)
    # Answered, they keep coming, and the connection stays open well past
    # interval + timeout.
    assert not client.closed
    # Bounds wide enough for a busy machine, narrow enough to tell the
    # 300 ms interval from none (hyper's default) or from seconds.
    assert 3 <= len(pings) <= 10, [round(t - start, 2) for t in pings]
    gaps = [b - a for a, b in zip(pings, pings[1:], strict=False)]
    assert all(0.1 <= gap <= 1.0 for gap in gaps), gaps


def test_no_keep_alive_pings_by_default(serve, connect):
    client = handshake(connect, serve(APP))
    client.receive(1.5)
    assert client.of(h2.events.PingReceived) == []
    assert not client.closed


def test_an_unanswered_ping_closes_the_connection_after_the_timeout(serve, connect):
    server = serve(
        APP, "--http2-keep-alive-interval", "300ms", "--http2-keep-alive-timeout", "700ms"
    )
    client = handshake(connect, server)
    client.receive(5.0, answer=False)
    assert client.closed, "the server kept a connection whose PING went unanswered"
    # The last PING is the one left unanswered (the handshake answered any
    # before it).
    closed_after = time.monotonic() - client.times_of(h2.events.PingReceived)[-1]
    print(f"closed {closed_after:.3f}s after the unanswered PING")
    # The timeout is 700 ms; hyper's default would be 20 s.
    assert 0.4 <= closed_after <= 3.0, closed_after
    # Other connections are not affected.
    assert httpx.get(server.url + "/").text == "Hello, world!"


# Send buffer -----------------------------------------------------------------


def sent_while_not_reading(connect, server) -> int:
    """How much of an endless response the app got to send to a client
    that gave the server all the HTTP/2 window it can but does not read."""
    client = connect(server, rcvbuf=4096)
    client.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: MAX_WINDOW})
    client.conn.increment_flow_control_window(MAX_WINDOW - SPEC_WINDOW)
    client.flush()
    client.request("GET", "/stream")
    time.sleep(1.5)
    return httpx.get(server.url + "/sent").json()["bytes"]


def test_the_send_buffer_holds_what_the_client_has_not_read(serve, connect):
    small = sent_while_not_reading(connect, serve(APP, "--http2-max-send-buffer-size", "16384"))
    large = sent_while_not_reading(
        connect, serve(APP, "--http2-max-send-buffer-size", str(32 * 2**20))
    )
    # Everything else (the sockets' buffers, diorite's own) is the same in
    # both; the difference is the send buffer, less the 16 KiB.
    print(f"sent while not reading: {small} bytes (16 KiB buffer), {large} (32 MiB)")
    assert large - small > 24 * 2**20, (small, large)


# HTTP/1.1 pipeline flush ----------------------------------------------------------


@pytest.mark.parametrize("http", ["auto", "1"])
def test_pipelined_requests_are_all_answered_with_pipeline_flush(serve, http):
    server = serve(APP, "--http", http, "--http1-pipeline-flush")
    data = server.raw(
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 5
        + b"GET /sent HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert pipelined_bodies(data) == [b"Hello, world!"] * 5 + [b'{"bytes": 0}']


@pytest.mark.parametrize("http", ["auto", "1"])
@pytest.mark.parametrize("flush", [True, False])
def test_pipeline_flush_holds_a_response_while_the_next_request_is_buffered(serve, http, flush):
    flag = "--http1-pipeline-flush" if flush else "--no-http1-pipeline-flush"
    server = serve(APP, "--http", http, flag)
    with socket.create_connection((server.host, server.port)) as s:
        # The first request, and the start of a second one.
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHo")
        s.settimeout(1.0)
        try:
            early = s.recv(65536)
        except TimeoutError:
            early = b""
        # Without pipeline flush the first response leaves at once; with
        # it, it waits for the rest of the buffered request.
        assert bool(early) is not flush, early
        s.sendall(b"st: x\r\nConnection: close\r\n\r\n")
        s.settimeout(10)
        data = early
        while chunk := s.recv(65536):
            data += chunk
    assert pipelined_bodies(data) == [b"Hello, world!"] * 2
