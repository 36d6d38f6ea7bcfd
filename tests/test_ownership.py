"""The GIL boundary under stress: every way a request can end early.

Each test provokes one of the crashes shipped Rust servers for Python have
had ("Cannot drop pointer into Python heap without the GIL being held",
"Cannot clone pointer ...", "... is unsendable, but is being dropped on
another thread", a leak per large response) and then checks that the server
still answers and that its log holds no panic (the fixture checks the log
of every server at teardown).
"""

import concurrent.futures
import os
import signal
import socket
import struct
import time

import httpx

CLIENTS = 200


def hang_up_mid_response(host, port, path, read=1, rst=False):
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        got = b""
        while len(got) < read:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        if rst:  # an abortive close: the server sees ECONNRESET
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    return got


def cut_streams(server, path, clients=CLIENTS, read=4096):
    """`clients` concurrent requests for `path`, each hung up (half of them
    with a reset) once `read` bytes of the response arrived."""
    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        jobs = [
            pool.submit(
                hang_up_mid_response, server.host, server.port, path, read=read, rst=bool(i % 2)
            )
            for i in range(clients)
        ]
        for job in jobs:
            assert job.result().startswith(b"HTTP/1.1 200")


def stats(server):
    return httpx.get(server.url + "/stats").json()


def wait_for(predicate, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_the_build_enforces_the_gil_rule():
    """Every test here runs against an extension without PyO3's reference
    pool (.cargo/config.toml): a Python object dropped by a thread that is
    not attached aborts the worker, and the fixture sees it. A RUSTFLAGS
    setting would silently lose that; this says so."""
    from diorite import _diorite

    assert _diorite.STRICT_GIL, "built without --cfg pyo3_disable_reference_pool (RUSTFLAGS set?)"


def test_streams_cancelled_by_client_disconnect(serve):
    server = serve("asgi_app:app")
    cut_streams(server, "/stream?n=100000&size=4096&delay=0.001")
    assert wait_for(lambda: stats(server)["stream_cancelled"] == CLIENTS), stats(server)
    assert httpx.get(server.url + "/").text == "Hello, world!"


def test_app_sees_http_disconnect(serve):
    server = serve("asgi_app:app")
    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        list(
            pool.map(
                lambda _: hang_up_mid_response(
                    server.host, server.port, "/wait-disconnect", read=10
                ),
                range(100),
            )
        )
    assert wait_for(lambda: stats(server)["disconnects"] == 100), stats(server)
    # Returning then, with the response unfinished, is not the app's fault.
    assert "returned without" not in server.log()


def test_disconnect_before_response_head(serve):
    server = serve("asgi_app:app")
    for _ in range(50):
        with socket.create_connection((server.host, server.port)) as s:
            s.sendall(b"GET /slow?delay=0.2 HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.5)
    assert httpx.get(server.url + "/").status_code == 200


def test_streaming_generators_are_closed_when_clients_leave(serve):
    server = serve("starlette_app:app")
    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        list(
            pool.map(
                lambda i: hang_up_mid_response(
                    server.host,
                    server.port,
                    "/stream?n=1000000&delay=0.001",
                    read=1000,
                    rst=bool(i % 2),
                ),
                range(CLIENTS),
            )
        )

    def all_closed():
        g = httpx.get(server.url + "/generators").json()
        return g["started"] == CLIENTS and g["closed"] == CLIENTS

    assert wait_for(all_closed), httpx.get(server.url + "/generators").json()


def test_callbacks_from_background_threads(serve):
    server = serve("asgi_app:app")
    with httpx.Client(timeout=20) as client, concurrent.futures.ThreadPoolExecutor(16) as pool:
        texts = list(pool.map(lambda _: client.get(server.url + "/thread").text, range(300)))
    assert texts == ["from a thread"] * 300
    assert stats(server)["thread_responses"] == 300


def test_large_responses_do_not_leak(serve):
    server = serve("asgi_app:app")
    rss_mib = server.rss_mib

    def fetch(n):
        with httpx.Client(timeout=30) as client:
            for _ in range(n):
                r = client.get(server.url + "/big?size=4194304")
                assert len(r.content) == 4194304

    fetch(20)  # warm up allocator pools
    before = rss_mib()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(fetch, [50] * 4))
    after = rss_mib()
    # 200 responses of 4 MiB went through; a per-response leak would show
    # hundreds of MiB here.
    assert after - before < 100, (before, after)
    # Those bodies were shared with hyper and released off the loop thread.
    assert stats(server)["deferred_releases"] > 0


def test_a_shared_body_is_freed_while_the_server_sits_idle(serve, tmp_path):
    """hyper drops a written body on its I/O thread, where the Python
    `bytes` it shares cannot be released; the event loop is asked to
    release it within about a second even when no other request comes to
    make it take a turn (before, it waited for the next request)."""
    server = serve("asgi_app:app")
    mark = tmp_path / "freed"
    response = httpx.get(server.url + "/marked-big", params={"mark": str(mark)})
    assert len(response.content) == 65536
    assert wait_for(mark.exists, timeout=5), "the body was not freed"


def test_shutdown_with_streams_in_flight(serve):
    server = serve("asgi_app:app", "--shutdown-timeout", "1")
    socks = []
    for _ in range(50):
        s = socket.create_connection((server.host, server.port))
        s.sendall(b"GET /stream?n=100000&size=1000&delay=0.01 HTTP/1.1\r\nHost: x\r\n\r\n")
        socks.append(s)
    for s in socks:
        assert s.recv(100).startswith(b"HTTP/1.1 200")
    server.signal(signal.SIGINT)
    assert server.proc.wait(30) == 0
    for s in socks:
        s.close()


def test_shutdown_with_slow_readers(serve):
    # The app is blocked in `send` (socket buffers full) when shutdown comes.
    server = serve("asgi_app:app", "--shutdown-timeout", "0.5")
    socks = []
    for _ in range(20):
        s = socket.create_connection((server.host, server.port))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(b"GET /big?size=33554432 HTTP/1.1\r\nHost: x\r\n\r\n")
        socks.append(s)
    time.sleep(0.5)
    server.signal(signal.SIGTERM)
    assert server.proc.wait(30) == 0
    for s in socks:
        s.close()


def test_survives_mixed_abuse_then_serves(serve):
    server = serve("asgi_app:app")
    paths = [
        "/stream?n=1000&size=1000&delay=0.001",
        "/raise-mid",
        "/raise-before",
        "/wait-disconnect",
        "/big?size=1048576",
    ]
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(
            pool.map(
                lambda i: hang_up_mid_response(
                    server.host, server.port, paths[i % len(paths)], read=1, rst=bool(i % 3)
                ),
                range(300),
            )
        )
    with httpx.Client() as client:
        assert all(client.get(server.url + "/").status_code == 200 for _ in range(50))
    assert os.path.exists(f"/proc/{server.proc.pid}")
