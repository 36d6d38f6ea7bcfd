"""Hardening (issue 14): what the server does when a client sends too
much, too slowly, or something malformed, and how it stops. Raw sockets
where the bytes on the wire matter; every case on the real server."""

from __future__ import annotations

import concurrent.futures
import signal
import socket
import time

import httpx
import pytest

WSGI = ("--interface", "wsgi")


def refused(server) -> bool:
    """True if a new connection to the server is refused (not left waiting
    in the backlog)."""
    try:
        with socket.create_connection((server.host, server.port), timeout=2) as s:
            s.settimeout(2)
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            return s.recv(100) == b""
    except ConnectionRefusedError:
        return True
    except (ConnectionResetError, TimeoutError):
        return False


@pytest.mark.parametrize(
    ("app", "flags", "slow"),
    [
        ("asgi_app:app", (), "/slow?delay=3"),
        ("wsgi_app:app", WSGI, "/sleep?s=3"),
        ("asgi_app:app", ("--workers", "2"), "/slow?delay=3"),
    ],
    ids=["asgi", "wsgi", "asgi-2-workers"],
)
def test_new_connections_are_refused_as_soon_as_the_stop_begins(serve, app, flags, slow):
    server = serve(app, *flags)
    if "--workers" in flags:
        server.wait_log("is ready")
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(httpx.get, server.url + slow, timeout=20)
        time.sleep(0.5)
        server.signal(signal.SIGTERM)
        server.wait_log("stopping" if "--workers" in flags else "shutting down")
        time.sleep(0.3)
        started = time.monotonic()
        assert refused(server)
        assert time.monotonic() - started < 1.5
        # ... while the request already in flight still gets its answer.
        assert in_flight.result().status_code == 200
    assert server.proc.wait(20) == 0
