"""Hardening (issue 14): what the server does when a client sends too
much, too slowly, or something malformed, and how it stops. Raw sockets
where the bytes on the wire matter; every case on the real server."""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import re
import resource
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


# The open-files limit -------------------------------------------------------


@contextlib.contextmanager
def soft_open_files_limit(soft: int):
    """Processes started inside inherit this soft RLIMIT_NOFILE."""
    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, before[1]))
    try:
        yield before[1]
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, before)


def open_files_limits(pid: int) -> tuple[int, int]:
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return int(soft), int(hard)
    raise AssertionError("no 'Max open files' line")


@pytest.mark.parametrize("flags", [(), ("--workers", "2")], ids=["single", "2-workers"])
def test_each_serving_process_raises_its_open_files_limit(serve, flags):
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard <= 512:
        pytest.skip(f"the hard limit ({hard}) leaves nothing to raise")
    with soft_open_files_limit(512):
        server = serve("asgi_app:app", *flags)
    # Once per serving process: the single server, or each worker (the
    # supervisor serves nothing and its limit stays as it was).
    expected = 2 if flags else 1
    pattern = re.compile(r"\[(\d+)\] INFO diorite: open files limit: 512 -> (\d+)")
    deadline = time.monotonic() + 20
    while len(raised := pattern.findall(server.log())) < expected:
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.05)
    pids = [int(pid) for pid, _ in raised]
    assert len(pids) == len(set(pids)) == expected, server.log()
    if not flags:
        assert pids == [server.proc.pid]
    else:
        assert server.proc.pid not in pids
        assert open_files_limits(server.proc.pid)[0] == 512
    for pid, target in raised:
        soft, hard_now = open_files_limits(int(pid))
        assert soft == int(target) == hard_now


def test_a_limit_that_cannot_be_raised_is_a_warning(monkeypatch, caplog):
    from diorite.limits import raise_open_files_limit

    def refuse(*_):
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(resource, "getrlimit", lambda _: (512, 4096))
    monkeypatch.setattr(resource, "setrlimit", refuse)
    logger = logging.getLogger("diorite")
    monkeypatch.setattr(logger, "propagate", True)
    with caplog.at_level(logging.INFO, logger="diorite"):
        raise_open_files_limit()
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "could not raise the open files limit: [Errno 1] Operation not permitted")
    ]
