"""ASGI 3 semantics against the real server: scope, body, lifespan, errors,
extensions."""

import socket
import time

import httpx
import pytest
from conftest import answers, run_cli, send_before_stop


def header_dict(scope):
    return [(k["bytes"], v["bytes"]) for k, v in scope["headers"]]


def test_scope_fields(serve):
    server = serve("asgi_app:app")
    r = httpx.get(
        server.url + "/scope/caf%C3%A9%20x?a=1&b=%20",
        headers=[("X-First", "1"), ("X-Multi", "a"), ("X-Multi", "b")],
    )
    scope = r.json()
    assert scope["type"] == "http"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "GET"
    assert scope["scheme"] == "http"
    assert scope["path"] == "/scope/café x"
    assert scope["raw_path"] == {"bytes": "/scope/caf%C3%A9%20x"}
    assert scope["query_string"] == {"bytes": "a=1&b=%20"}
    assert scope["root_path"] == ""
    headers = header_dict(scope)
    assert all(name == name.lower() for name, _ in headers)
    names = [name for name, _ in headers]
    assert names.index("x-first") < names.index("x-multi")
    assert [v for k, v in headers if k == "x-multi"] == ["a", "b"]
    assert scope["client"][0] == "127.0.0.1" and isinstance(scope["client"][1], int)
    assert scope["server"] == ["127.0.0.1", server.port]
    assert set(scope["extensions"]) == {"http.response.pathsend", "http.response.trailers"}
    # The lifespan state reaches every request (as a copy).
    assert scope["state"] == {"started_by": "lifespan"}


def test_http2_cookie_fields_reach_the_app_as_one_header(serve):
    # Browsers send each cookie in its own field over HTTP/2; an app that
    # reads one `cookie` header (Starlette does) must see them all.
    server = serve("asgi_app:app")
    with httpx.Client(http1=False, http2=True) as client:
        r = client.get(server.url + "/scope", headers=[("Cookie", "a=1"), ("Cookie", "b=2")])
    scope = r.json()
    assert scope["http_version"] == "2"
    assert [v for k, v in header_dict(scope) if k == "cookie"] == ["a=1; b=2"]


def test_http10_request(serve):
    server = serve("asgi_app:app")
    data = server.raw(b"GET /scope HTTP/1.0\r\n\r\n")
    assert b'"http_version": "1.0"' in data


def test_body_streams_in_pieces(serve):
    server = serve("asgi_app:app")
    payload = b"x" * (5 * 1024 * 1024)
    r = httpx.post(server.url + "/echo", content=payload, timeout=30)
    assert r.content == payload
    assert int(r.headers["x-receive-calls"]) >= 2  # more_body was used


def test_large_upload_is_read_incrementally(serve):
    server = serve("asgi_app:app")

    def gen():
        for _ in range(64):
            yield b"y" * (1024 * 1024)

    r = httpx.post(server.url + "/echo-length", content=gen(), timeout=60)
    assert r.text == str(64 * 1024 * 1024)


def test_app_exception_before_start_is_500_and_logged(serve):
    server = serve("asgi_app:app")
    r = httpx.get(server.url + "/raise-before")
    assert r.status_code == 500
    assert httpx.get(server.url + "/").status_code == 200
    log = server.wait_log("boom before start")
    assert "Exception in ASGI application" in log
    assert "RuntimeError: boom before start" in log
    assert "Traceback" in log


def test_app_exception_mid_stream_closes_connection(serve):
    server = serve("asgi_app:app")
    with pytest.raises(httpx.RemoteProtocolError):
        with httpx.stream("GET", server.url + "/raise-mid") as r:
            assert r.status_code == 200
            r.read()
    server.wait_log("boom mid-stream")
    assert httpx.get(server.url + "/").status_code == 200


def test_app_returning_without_response_is_500(serve):
    server = serve("asgi_app:app")
    assert httpx.get(server.url + "/no-response").status_code == 500
    server.wait_log("returned without")


def test_body_before_start_is_500(serve):
    server = serve("asgi_app:app")
    assert httpx.get(server.url + "/bad-message").status_code == 500
    server.wait_log("sent before 'http.response.start'")


def test_pathsend_sends_file_from_rust(serve, tmp_path):
    server = serve("asgi_app:app")
    data = bytes(range(256)) * 40_000  # ~10 MB
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    r = httpx.get(server.url + "/pathsend", params={"file": str(path)})
    assert r.status_code == 200
    assert r.headers["content-length"] == str(len(data))
    assert r.content == data
    missing = httpx.get(server.url + "/pathsend", params={"file": str(tmp_path / "nope")})
    assert missing.status_code == 404


def test_trailers_over_http2(serve):
    import h2.config
    import h2.connection
    import h2.events

    server = serve("asgi_app:app")
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    with socket.create_connection((server.host, server.port)) as s:
        s.sendall(conn.data_to_send())
        conn.send_headers(
            1,
            [
                (":method", "GET"),
                (":path", "/trailers"),
                (":scheme", "http"),
                (":authority", "x"),
                ("te", "trailers"),
            ],
            end_stream=True,
        )
        s.sendall(conn.data_to_send())
        body, trailers, ended = b"", None, False
        while not ended:
            data = s.recv(65536)
            assert data
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.DataReceived):
                    body += event.data
                    conn.acknowledge_received_data(len(event.data), 1)
                elif isinstance(event, h2.events.TrailersReceived):
                    trailers = dict(event.headers)
                elif isinstance(event, h2.events.StreamEnded):
                    ended = True
            s.sendall(conn.data_to_send())
    assert body == b"body"
    assert trailers == {b"x-checksum": b"abc123"}


def test_trailers_over_http1_chunked(serve):
    server = serve("asgi_app:app")
    data = server.raw(
        b"GET /trailers HTTP/1.1\r\nHost: x\r\nTE: trailers\r\nConnection: close\r\n\r\n"
    )
    assert b"transfer-encoding: chunked" in data.lower()
    assert b"x-checksum: abc123" in data.lower()


def test_lifespan_startup_failure_exits_nonzero():
    result = run_cli("asgi_app:app", "--port", "0", env={"FAIL_STARTUP": "1"})
    assert result.returncode == 1
    assert "database unreachable" in result.stderr


def test_lifespan_shutdown_runs_on_sigterm(serve, tmp_path):
    import signal

    marker = tmp_path / "shutdown.txt"
    server = serve("asgi_app:app", env={"SHUTDOWN_MARKER": str(marker)})
    assert httpx.get(server.url + "/").status_code == 200
    server.signal(signal.SIGTERM)
    assert server.proc.wait(20) == 0
    assert marker.read_text() == "lifespan shutdown ran"


@pytest.mark.parametrize(
    ("startup", "after"),
    [
        # The signal waits for the loop and the app goes on serving
        # briefly; before, KeyboardInterrupt landed in the app's startup,
        # which the lifespan took for "not supported", and the server
        # served on with the signal gone.
        ({"STARTUP_BLOCKS": "1.5"}, "shutting down"),
        # Startup is given up on: the signal must not wait for it.
        ({"STARTUP_HANGS": "1"}, "stopped before the app finished starting"),
    ],
    ids=["blocking", "hanging"],
)
def test_a_stop_signal_during_startup_stops_the_server(serve, tmp_path, startup, after):
    import signal

    marker = tmp_path / "started.txt"
    server = serve("asgi_app:app", env={"STARTUP_MARKER": str(marker), **startup})
    deadline = time.monotonic() + 20
    while not marker.exists():
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.01)
    server.signal(signal.SIGINT)
    assert server.proc.wait(20) == 0, server.log()
    log = server.log()
    assert after in log
    assert "Traceback" not in log and "KeyboardInterrupt" not in log, log


def test_asginl_skips_lifespan(serve, tmp_path):
    marker = tmp_path / "shutdown.txt"
    server = serve("asgi_app:app", "--interface", "asginl", env={"SHUTDOWN_MARKER": str(marker)})
    scope = httpx.get(server.url + "/scope").json()
    assert "state" not in scope
    server.stop()
    assert not marker.exists()


def test_graceful_shutdown_finishes_in_flight_requests(serve):
    import signal

    server = serve("asgi_app:app")
    clients = send_before_stop(server, "/slow?delay=1", 8)
    server.signal(signal.SIGTERM)
    assert answers(clients) == [b"slow done"] * 8
    assert server.proc.wait(20) == 0
    # New connections are refused once shutdown began.
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url + "/")


def test_shutdown_timeout_cuts_off_slow_requests(serve):
    import signal

    server = serve("asgi_app:app", "--shutdown-timeout", "0.5")
    with httpx.Client() as client:
        import threading

        errors = []

        def call():
            try:
                client.get(server.url + "/slow?delay=30", timeout=20)
            except httpx.HTTPError as exc:
                errors.append(exc)

        t = threading.Thread(target=call)
        t.start()
        time.sleep(0.3)
        started = time.monotonic()
        server.signal(signal.SIGTERM)
        assert server.proc.wait(20) == 0
        assert time.monotonic() - started < 10
        t.join(20)
    assert errors
    server.wait_log("cut off")


def test_receive_and_send_work_as_tasks(serve):
    """What receive() and send() return can be wrapped in tasks, as with
    Uvicorn's coroutine functions, also while the body is still coming."""
    server = serve("asgi_app:app")

    def slow_body():
        for i in range(5):
            time.sleep(0.05)
            yield f"part {i};".encode()

    r = httpx.post(server.url + "/tasks", content=slow_body())
    assert r.status_code == 200
    assert r.text == "".join(f"part {i};" for i in range(5))
    # The first receive() waited for the slow body and was cancelled.
    assert httpx.get(server.url + "/stats").json()["receive_cancelled"] == 1
    r = httpx.post(server.url + "/tasks", content=b"at once")
    assert r.text == "at once"


def test_client_gone_between_head_and_streamed_body(serve):
    """Regression: a client that left after http.response.start but before
    the first streamed body chunk deadlocked the worker (the abandoned body
    was dropped while its exchange was locked)."""
    server = serve("asgi_app:app")
    for _ in range(10):
        with socket.create_connection((server.host, server.port)) as s:
            s.sendall(b"GET /late-stream HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(0.05)
    time.sleep(0.3)
    assert httpx.get(server.url + "/", timeout=5).text == "Hello, world!"
    assert httpx.get(server.url + "/late-stream?delay=0", timeout=5).text == "ab"
