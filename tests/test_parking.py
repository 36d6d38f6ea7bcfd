"""Idle HTTP/1 connections parked outside hyper (src/server/http1.rs): an
idle keep-alive connection holds little memory, and a parked connection
still serves whatever comes next (requests, pipelined requests, a
websocket upgrade, over TLS too) and is still closed by the keep-alive and
header-read timeouts, by `--limit-connections` and by a stop."""

from __future__ import annotations

import http.client
import signal
import socket
import ssl
import time

import pytest
import trustme
from conftest import hold_idle_connections
from websockets.sync.client import connect as ws_connect

# A little over the server's PARK_AFTER (1 s).
PARKED = 1.6


def get(path: str = "/") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()


class Responses:
    """Reads the responses on one keep-alive socket, one after another,
    with the standard library's parser."""

    def __init__(self, sock: socket.socket):
        self.file = sock.makefile("rb")

    def makefile(self, mode: str):
        return self  # http.client reads through this, and closes it

    def __getattr__(self, name: str):
        return getattr(self.file, name)

    def close(self) -> None:
        pass  # the socket carries on after each response

    def next(self) -> tuple[int, bytes]:
        response = http.client.HTTPResponse(self)  # type: ignore[arg-type]
        response.begin()
        return response.status, response.read()


def closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(100) == b""
    except ConnectionResetError:
        return True


def idle_connection(server, after: bytes = b"") -> socket.socket:
    """A connection that made one request (followed by `after`) and is
    now idle."""
    s = socket.create_connection((server.host, server.port), timeout=10)
    s.sendall(get() + after)
    assert Responses(s).next()[0] == 200
    return s


def assert_a_stop_closes_it_at_once(server, parked: socket.socket) -> None:
    server.signal(signal.SIGTERM)
    started = time.monotonic()
    assert closed_by_server(parked)
    assert time.monotonic() - started < 3
    assert server.proc.wait(20) == 0


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    root = tmp_path_factory.mktemp("parking-tls")
    chain, key = root / "chain.pem", root / "key.pem"
    chain.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(key))
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return ["--ssl-certificate", str(chain), "--ssl-keyfile", str(key)], context


@pytest.mark.parametrize(
    ("app", "flags"),
    [
        ("asgi_app:app", ()),
        ("asgi_app:app", ("--http", "1")),
        ("wsgi_app:app", ("--interface", "wsgi")),
        ("asgi_app:app", ("tls",)),
    ],
    ids=["asgi", "asgi-http1-only", "wsgi", "asgi-tls"],
)
def test_a_parked_connection_serves_what_comes_next(serve, tls_files, app, flags):
    context = None
    if flags == ("tls",):
        flags, context = tls_files
    server = serve(app, *flags, "--timeout-keep-alive", "60")

    def connect() -> tuple[socket.socket, Responses]:
        sock = socket.create_connection((server.host, server.port), timeout=10)
        if context is not None:
            sock = context.wrap_socket(sock, server_hostname="127.0.0.1")
        return sock, Responses(sock)

    # Three connections park side by side, each left in another state, so
    # that one wait covers all three.
    (plain, plain_r), (split, split_r), (posted, posted_r) = connect(), connect(), connect()
    with plain, split, posted:
        plain.sendall(get())
        assert plain_r.next()[0] == 200
        # A request and the start of the next one: the connection parks
        # with that start read but not used, and it is not lost.
        split.sendall(get() + b"GET /nothing-here HTTP/1.1\r\nHo")
        assert split_r.next()[0] == 200
        # A request with a body, then idle: the body is read before the
        # connection may park, and the next request is still a request.
        body = b"x" * 100_000
        posted.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + body)
        assert posted_r.next() == (200, body)
        time.sleep(PARKED)
        # Two requests in one write, after a park.
        plain.sendall(get() + get("/nothing-here"))
        assert plain_r.next()[0] == 200
        assert plain_r.next()[0] == 404
        split.sendall(b"st: x\r\n\r\n")
        assert split_r.next()[0] == 404
        posted.sendall(get())
        assert posted_r.next()[0] == 200
        time.sleep(PARKED)
        # Each parks again, and serves again.
        for sock, responses in ((plain, plain_r), (split, split_r), (posted, posted_r)):
            sock.sendall(get())
            assert responses.next()[0] == 200


def test_a_parked_connection_can_be_upgraded_to_a_websocket(serve):
    server = serve("ws_asgi_app:app", "--timeout-keep-alive", "60")
    sock = socket.create_connection((server.host, server.port), timeout=10)
    responses = Responses(sock)
    sock.sendall(get("/plain"))
    status, body = responses.next()
    assert (status, body) == (200, b"plain http, upgrade=")
    time.sleep(PARKED)
    with ws_connect(f"ws://{server.host}:{server.port}/echo", sock=sock) as ws:
        ws.send("after a park")
        assert ws.recv(timeout=10) == "after a park"
        ws.send(b"\x00" * 70_000)
        assert ws.recv(timeout=10) == b"\x00" * 70_000


@pytest.mark.parametrize(
    "request_sent",
    [get(), b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"],
    ids=["get", "post"],
)
def test_idle_keep_alive_connections_hold_little_memory_once_parked(serve, request_sent):
    """hyper's 16 KiB of buffers per connection are freed once it is idle:
    before parking an idle keep-alive connection cost about 23 KiB here,
    after it about 5 (bench/results/idle.md). So it is when the last request
    had a body, once that body has been read."""
    count = 2000
    server = serve("asgi_app:app", "--timeout-keep-alive", "600")
    warm = idle_connection(server)
    before = server.rss_mib()
    held = hold_idle_connections(server, count, request_sent)
    try:
        time.sleep(PARKED + 1)
        per_connection = (server.rss_mib() - before) * 1024 / count
        assert per_connection < 11, f"{per_connection:.1f} KiB per idle connection"
        # Every one of them still answers.
        for s in held:
            s.sendall(get())
        for s in held:
            assert Responses(s).next()[0] == 200
    finally:
        for s in held:
            s.close()
        warm.close()


def test_parked_connections_are_still_closed_by_timeouts_limits_and_stops(serve):
    # The keep-alive timeout counts from the end of the last response,
    # parked or not.
    server = serve("asgi_app:app", "--timeout-keep-alive", "2.5")
    with idle_connection(server) as s:
        started = time.monotonic()
        assert closed_by_server(s)
        assert 2.0 < time.monotonic() - started < 6
    # A parked connection makes room for a new one (--limit-connections).
    server = serve("asgi_app:app", "--timeout-keep-alive", "60", "--limit-connections", "2")
    first, second = idle_connection(server), idle_connection(server)
    time.sleep(PARKED)
    with idle_connection(server):
        assert closed_by_server(first)
        second.sendall(get())
        assert Responses(second).next()[0] == 200
    first.close()
    second.close()
    # A stop closes a parked connection at once.
    time.sleep(0.3)
    with idle_connection(server) as s:
        time.sleep(PARKED)
        assert_a_stop_closes_it_at_once(server, s)


def test_the_header_read_timeout_also_closes_a_parked_connection(serve):
    """As it closes an idle connection hyper still holds, when it is
    shorter than the keep-alive timeout."""
    server = serve(
        "asgi_app:app", "--timeout-keep-alive", "60", "--http1-header-read-timeout", "2500"
    )
    with idle_connection(server) as s:
        started = time.monotonic()
        assert closed_by_server(s)
        assert 2.0 < time.monotonic() - started < 6


def test_a_stop_closes_a_parked_connection_that_sent_an_empty_line_too(serve):
    """Bytes hyper read but did not use are kept when a connection parks;
    empty lines among them are dropped (a request may be preceded by some),
    so the stop does not wait for a request that is not coming."""
    server = serve("asgi_app:app", "--timeout-keep-alive", "60")
    with idle_connection(server, after=b"\r\n") as s:
        time.sleep(PARKED)
        assert_a_stop_closes_it_at_once(server, s)
