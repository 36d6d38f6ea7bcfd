"""WSGI (PEP 3333) against the real server, with a raw app, Flask and
Django."""

import concurrent.futures
import json
import socket
import time

import httpx
import pytest
from test_ownership import cut_streams, wait_for

WSGI = ("--interface", "wsgi")


def stats(server):
    return httpx.get(server.url + "/stats").json()


def test_hello(serve):
    server = serve("wsgi_app:app", *WSGI)
    r = httpx.get(server.url + "/")
    assert (r.status_code, r.text, r.headers["content-length"]) == (200, "Hello, world!", "13")


def test_environ(serve):
    server = serve("wsgi_app:app", *WSGI)
    r = httpx.get(
        server.url + "/environ/caf%C3%A9?x=1&y=%20",
        headers=[("X-Multi", "a"), ("X-Multi", "b"), ("Cookie", "a=1"), ("Cookie", "b=2")],
    )
    env = r.json()
    assert env["REQUEST_METHOD"] == "GET"
    assert env["SCRIPT_NAME"] == ""
    assert env["PATH_INFO"] == "/environ/caf\u00c3\u00a9"  # UTF-8 bytes read as latin-1
    assert env["QUERY_STRING"] == "x=1&y=%20"
    assert env["SERVER_NAME"] == "127.0.0.1"
    assert env["SERVER_PORT"] == str(server.port)
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["REMOTE_PORT"].isdigit()
    assert env["HTTP_X_MULTI"] == "a, b"
    assert env["HTTP_COOKIE"] == "a=1; b=2"
    assert env["HTTP_HOST"] == f"127.0.0.1:{server.port}"
    assert "CONTENT_LENGTH" not in env
    assert env["wsgi.version"] == [1, 0]
    assert env["wsgi.url_scheme"] == "http"
    assert env["wsgi.multithread"] is True
    assert env["wsgi.multiprocess"] is False
    assert env["wsgi.run_once"] is False
    assert env["wsgi.input_terminated"] is True
    assert env["wsgi.errors_is_stderr"] is True
    assert env["has_file_wrapper"] is True
    r = httpx.post(server.url + "/environ", content=b"abc", headers={"Content-Type": "text/x-test"})
    env = r.json()
    assert env["CONTENT_TYPE"] == "text/x-test"
    assert env["CONTENT_LENGTH"] == "3"
    assert "HTTP_CONTENT_TYPE" not in env and "HTTP_CONTENT_LENGTH" not in env


def test_raw_utf8_in_the_query_is_latin1_text(serve):
    # hyper lets raw UTF-8 through in the request target; PEP 3333 wants
    # every byte as one latin-1 character, as PATH_INFO has it.
    server = serve("wsgi_app:app", *WSGI)
    # HTTP/1.0, so the body comes unchunked, ended by the close.
    answer = server.raw(b"GET /environ?q=\xe2\x82\xac HTTP/1.0\r\nHost: x\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b" 200 " in head.split(b"\r\n")[0], head
    env = json.loads(body)
    assert env["QUERY_STRING"] == "q=\u00e2\u0082\u00ac"
    assert env["QUERY_STRING"].encode("latin-1") == b"q=\xe2\x82\xac"


def test_input_read_variants(serve):
    server = serve("wsgi_app:app", *WSGI)
    payload = bytes(range(256)) * 4000
    assert httpx.post(server.url + "/echo", content=payload).content == payload
    r = httpx.post(server.url + "/echo-sized?n=1000", content=payload)
    assert r.content == payload
    assert int(r.headers["x-parts"]) == len(payload) // 1000 + (1 if len(payload) % 1000 else 0)
    lines = b"first line\nabcdef\nthird\nfourth\n"
    assert httpx.post(server.url + "/lines", content=lines).json() == [
        "first line\n",
        "abc",
        ["def\n", "third\n", "fourth\n"],
    ]
    assert httpx.post(server.url + "/iter-lines", content=b"a\nb\nc").text == "3"


@pytest.mark.parametrize("chunked", [False, True])
def test_large_upload_streams(serve, chunked):
    server = serve("wsgi_app:app", *WSGI)
    size = 200 * 1024 * 1024

    def gen():
        block = b"u" * (1024 * 1024)
        for _ in range(size // len(block)):
            yield block

    rss_mib = server.rss_mib

    before = rss_mib()
    headers = {} if chunked else {"Content-Length": str(size)}
    r = httpx.post(server.url + "/upload-length", content=gen(), headers=headers, timeout=120)
    assert r.text == str(size)
    # 200 MiB went through; the worker never held more than a few MiB of it.
    assert rss_mib() - before < 50


def test_streamed_generator_and_close(serve):
    server = serve("wsgi_app:app", *WSGI)
    with httpx.stream("GET", server.url + "/stream?n=5&size=3&delay=0.2") as r:
        assert r.headers["transfer-encoding"] == "chunked"
        started = time.monotonic()
        pieces = r.iter_raw()
        first = next(pieces)
        # The first chunk arrives before the generator finished (not buffered).
        assert time.monotonic() - started < 0.6
        rest = b"".join(pieces)
    assert first + rest == b"000111222333444"
    assert wait_for(lambda: stats(server)["closed"] >= 1)


def test_write_callable(serve):
    server = serve("wsgi_app:app", *WSGI)
    assert httpx.get(server.url + "/write").text == "written then returned"


def test_file_wrapper(serve, tmp_path):
    server = serve("wsgi_app:app", *WSGI)
    data = bytes(range(256)) * 40_000
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    r = httpx.get(server.url + "/file", params={"path": str(path)})
    assert r.content == data
    assert r.headers["content-length"] == str(len(data))
    r = httpx.get(server.url + "/file", params={"path": str(path), "seek": 1000})
    assert r.content == data[1000:]


def test_head_has_no_body(serve):
    server = serve("wsgi_app:app", *WSGI)
    data = server.raw(b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"content-length: 13" in head.lower()
    assert body == b""


def test_errors(serve):
    server = serve("wsgi_app:app", *WSGI)
    assert httpx.get(server.url + "/raise").status_code == 500
    server.wait_log("wsgi boom")
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(server.url + "/raise-in-iter")
    server.wait_log("wsgi boom in iteration")
    assert httpx.get(server.url + "/non-iterable").status_code == 500
    server.wait_log("non-iterable int")
    assert httpx.get(server.url + "/twice").status_code == 500
    server.wait_log("start_response called a second time without exc_info")
    r = httpx.get(server.url + "/exc-info")
    assert (r.status_code, r.text) == (503, "error page")
    assert httpx.get(server.url + "/no-start").status_code == 500
    server.wait_log("did not call start_response")
    assert "Traceback" in server.log()
    for kind, message in [
        ("int", "header names and values must be str, not int"),
        ("utf8", "header 'X-Name' is not latin-1 text"),
        ("name", "invalid header name"),
    ]:
        assert httpx.get(server.url + f"/bad-header?kind={kind}").status_code == 500
        server.wait_log(message)
    assert httpx.get(server.url + "/").status_code == 200


def test_headers_and_body_as_tuples(serve):
    server = serve("wsgi_app:app", *WSGI)
    r = httpx.get(server.url + "/tuple-headers")
    assert (r.status_code, r.text, r.headers["x-a"]) == (200, "tuple body", "1")
    assert r.headers["x-b"].encode("latin-1") == "caf\u00e9".encode("latin-1")


def test_malformed_request_gets_400(serve):
    server = serve("wsgi_app:app", *WSGI)
    with socket.create_connection((server.host, server.port)) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nBroken header line\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 400")


def test_sleeping_requests_run_in_parallel(serve):
    server = serve("wsgi_app:app", *WSGI)
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        texts = list(
            pool.map(lambda _: httpx.get(server.url + "/sleep?s=0.5", timeout=10).text, range(16))
        )
    elapsed = time.monotonic() - started
    assert texts == ["slept"] * 16
    assert elapsed < 2.0, elapsed


def test_an_app_that_computes_is_not_spread_over_threads_that_share_the_gil(serve):
    # 16 clients at once on requests that compute for 3 ms: threads woken
    # beside the first would only take turns at the GIL (and slow every
    # request down), so the pool stays small (5 or 6 of the 32 here);
    # before the pool looked at whether its threads were computing, all 32
    # started.
    server = serve("wsgi_app:app", *WSGI)
    # One client for all: `httpx.get` would build one (and its TLS context)
    # per request, 25 ms of the test's CPU each.
    with httpx.Client(timeout=30) as client, concurrent.futures.ThreadPoolExecutor(16) as pool:
        texts = list(
            pool.map(lambda _: client.get(server.url + "/compute?s=0.003").text, range(400))
        )
    assert texts == ["computed"] * 400
    started = int(httpx.get(server.url + "/pool-threads").text)
    assert started <= 12, f"{started} pool threads started"


def test_slow_clients_do_not_pin_threads(serve):
    # Two pool threads; four clients that do not read a large stream. The
    # threads must come back to the pool, so a fifth request is served.
    server = serve("wsgi_app:app", *WSGI, "--blocking-threads", "2")
    socks = []
    for _ in range(4):
        s = socket.create_connection((server.host, server.port))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(b"GET /stream?n=100000&size=65536 HTTP/1.1\r\nHost: x\r\n\r\n")
        socks.append(s)
    time.sleep(1.0)
    r = httpx.get(server.url + "/", timeout=5)
    assert r.text == "Hello, world!"
    for s in socks:
        s.close()
    assert wait_for(lambda: stats(server)["closed"] >= 4), stats(server)


def test_clients_hanging_up_mid_response(serve):
    server = serve("wsgi_app:app", *WSGI)
    cut_streams(server, "/stream?n=100000&size=4096&delay=0.0005", clients=200)
    # close() ran for every response, on a thread allowed to touch Python.
    assert wait_for(lambda: stats(server)["closed"] >= 200), stats(server)
    assert httpx.get(server.url + "/").status_code == 200


def test_validator_is_satisfied(serve):
    server = serve("wsgi_app:validated_app", *WSGI, env={"PYTHONWARNINGS": "error"})
    assert httpx.get(server.url + "/").status_code == 200
    # (The validator insists that apps pass read() a size, as PEP 3333 asks.)
    assert httpx.post(server.url + "/echo-sized", content=b"x" * 10000).content == b"x" * 10000
    assert httpx.post(server.url + "/lines", content=b"a\nb\n").status_code == 200
    assert httpx.get(server.url + "/stream?n=3&size=1").text == "012"
    assert httpx.get(server.url + "/write").status_code == 200
    log = server.log()
    assert "AssertionError" not in log and "Warning" not in log, log


def test_flask(serve, tmp_path):
    data = bytes(range(256)) * 4096  # 1 MiB
    path = tmp_path / "download.bin"
    path.write_bytes(data)
    server = serve("flask_app:app", *WSGI, env={"FLASK_TEST_FILE": str(path)})
    base = server.url
    assert httpx.get(base + "/").text == "Hello from Flask"
    assert httpx.get(base + "/json?q=x").json() == {"items": [1, 2, 3], "q": "x"}
    assert httpx.post(base + "/form", data={"a": "1", "b": "two"}).json() == {"a": "1", "b": "two"}
    upload = b"DATA" + b"\x00" * (5 * 1024 * 1024)
    assert httpx.post(base + "/upload", content=upload).json() == {
        "size": len(upload),
        "head": "DATA",
    }

    def chunks():
        for i in range(0, len(upload), 65536):
            yield upload[i : i + 65536]

    assert httpx.post(base + "/upload", content=chunks()).json() == {
        "size": len(upload),
        "head": "DATA",
    }
    r = httpx.get(base + "/file")
    assert r.content == data and r.headers["content-length"] == str(len(data))
    r = httpx.get(base + "/file", headers={"Range": "bytes=100-199"})
    assert r.status_code == 206
    assert r.content == data[100:200]
    assert r.headers["content-range"] == f"bytes 100-199/{len(data)}"
    with httpx.stream("GET", base + "/stream?n=3") as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.read() == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"
    r = httpx.get(base + "/old")
    assert r.status_code == 302 and r.headers["location"] == "/json?q=redirected"
    assert httpx.get(base + "/old", follow_redirects=True).json()["q"] == "redirected"
    assert httpx.get(base + "/missing").status_code == 404
    assert httpx.get(base + "/error").status_code == 500
    server.wait_log("flask boom")


def test_django(serve):
    server = serve("django_app:application", *WSGI)
    base = server.url
    assert httpx.get(base + "/").text == "Hello from Django"
    assert httpx.get(base + "/items/5/?q=z").json() == {"pk": 5, "q": "z"}
    r = httpx.post(base + "/submit/", json={"a": [1, 2]})
    assert r.status_code == 201
    assert r.json()["got"] == {"a": [1, 2]}
    assert httpx.get(base + "/nope/").status_code == 404


def test_shutdown_with_app_still_running(serve):
    import signal
    import threading

    server = serve("wsgi_app:app", *WSGI, "--shutdown-timeout", "0.5")
    caught = []

    def call():
        try:
            httpx.get(server.url + "/sleep?s=30", timeout=20)
        except httpx.HTTPError as exc:
            caught.append(exc)

    t = threading.Thread(target=call)
    t.start()
    time.sleep(0.3)
    server.signal(signal.SIGTERM)
    assert server.proc.wait(20) == 0
    t.join(20)
    assert caught
    server.wait_log("still running after shutdown")


def test_large_responses_do_not_leak(serve):
    # Bodies of 16 KiB and more are shared with hyper and released off the
    # pool; with no event loop in a WSGI worker, the pool must release them.
    server = serve("wsgi_app:app", *WSGI)
    with httpx.Client(timeout=30) as client:
        for _ in range(10):
            client.get(server.url + "/big")
        before = server.rss_mib()
        for _ in range(150):
            assert len(client.get(server.url + "/big").content) == 4 * 1024 * 1024
    assert server.rss_mib() - before < 100


def test_pool_threads_start_when_needed_and_end_when_idle(serve):
    server = serve(
        "wsgi_app:app",
        "--interface",
        "wsgi",
        "--blocking-threads",
        "4",
        "--blocking-threads-idle-timeout",
        "500ms",
    )
    assert httpx.get(server.url + "/pool-threads").text == "1"
    with concurrent.futures.ThreadPoolExecutor(4) as clients:
        slow = [clients.submit(httpx.get, server.url + "/sleep?s=0.5") for _ in range(4)]
        assert [f.result().text for f in slow] == ["slept"] * 4
    assert httpx.get(server.url + "/pool-threads").text == "4"
    assert wait_for(lambda: httpx.get(server.url + "/pool-threads").text == "1", timeout=10)
