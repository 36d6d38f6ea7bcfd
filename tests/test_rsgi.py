"""RSGI against the real server: scope, headers, body, responses, files,
streams, disconnects, lifecycle hooks."""

import concurrent.futures
import signal
import socket
import time

import httpx
import pytest
from conftest import answers, send_before_stop
from test_ownership import cut_streams, wait_for

RSGI = ("--interface", "rsgi")


def test_hello_and_response_kinds(serve):
    server = serve("rsgi_app:app", *RSGI)
    r = httpx.get(server.url + "/")
    assert (r.status_code, r.text) == (200, "Hello, world!")
    assert r.headers["content-type"] == "text/plain"
    assert httpx.get(server.url + "/bytes").content == b"\x00\x01\x02"
    r = httpx.get(server.url + "/empty")
    assert (r.status_code, r.content, r.headers["x-empty"]) == (204, b"", "yes")
    assert httpx.get(server.url + "/missing").status_code == 404


def test_responses_from_the_loop_and_from_other_threads(serve):
    """Responses made on the loop thread go out in batches; one made on
    another thread goes out at once. Both kinds, concurrently, all arrive."""
    server = serve("rsgi_app:app", *RSGI)
    paths = ["/", "/thread", "/slow?delay=0.01"] * 100
    with httpx.Client(timeout=20) as client, concurrent.futures.ThreadPoolExecutor(32) as pool:
        texts = list(pool.map(lambda p: client.get(server.url + p).text, paths))
    assert texts == ["Hello, world!", "from a thread", "slow done"] * 100


def test_plain_coroutine_function_app(serve):
    server = serve("rsgi_app:plain", *RSGI)
    assert httpx.get(server.url + "/").text == "plain function"


def test_scope_fields_and_headers(serve):
    server = serve("rsgi_app:app", *RSGI)
    r = httpx.get(
        server.url + "/scope/caf%C3%A9?a=1&b=%20",
        headers=[("X-First", "1"), ("X-Multi", "a"), ("X-Multi", "b")],
    )
    s = r.json()
    assert s["proto"] == "http"
    assert s["rsgi_version"] == "1.6"
    assert s["http_version"] == "1.1"
    assert s["server"] == f"127.0.0.1:{server.port}"
    host, port = s["client"].rsplit(":", 1)
    assert host == "127.0.0.1" and port.isdigit()
    assert s["scheme"] == "http"
    assert s["method"] == "GET"
    assert s["path"] == "/scope/café"
    assert s["query_string"] == "a=1&b=%20"
    assert s["authority"] is None
    assert "x-first" in s["keys"] and "x-multi" in s["keys"]
    assert s["get"] == "a"
    assert s["get_all"] == ["a", "b"]
    assert s["get_default"] == "dflt"
    assert s["getitem"] == "1"
    assert s["contains_missing"] is False
    assert s["keyerror"] is True
    assert s["len"] == len(s["keys"]) == len(s["iter"])
    assert s["values_count"] == len(s["items"]) == len(s["keys"]) + 1
    assert ["x-multi", "b"] in s["items"]


def test_scope_over_http2_has_authority(serve):
    server = serve("rsgi_app:app", *RSGI)
    with httpx.Client(http1=False, http2=True) as client:
        s = client.get(server.url + "/scope").json()
    assert s["http_version"] == "2"
    assert s["authority"] == f"127.0.0.1:{server.port}"


def test_body_awaited_and_iterated(serve):
    server = serve("rsgi_app:app", *RSGI)
    payload = bytes(range(256)) * 20_000  # 5 MB
    assert httpx.post(server.url + "/echo", content=payload, timeout=30).content == payload
    r = httpx.post(server.url + "/echo-iter", content=payload, timeout=30)
    assert r.content == payload
    assert int(r.headers["x-chunks"]) >= 2

    def gen():
        for i in range(100):
            yield bytes([i]) * 1000

    r = httpx.post(server.url + "/echo-iter", content=gen())
    assert r.content == b"".join(gen())
    assert httpx.post(server.url + "/echo", content=b"").content == b""
    assert httpx.get(server.url + "/echo-iter").headers["x-chunks"] == "0"


def test_streaming_response(serve):
    server = serve("rsgi_app:app", *RSGI)
    with httpx.stream("GET", server.url + "/stream?n=20&size=100") as r:
        assert r.headers["transfer-encoding"] == "chunked"
        body = r.read()
    assert len(body) == 2000
    assert body[:200] == b"0" * 100 + b"1" * 100


def test_file_responses(serve, tmp_path):
    server = serve("rsgi_app:app", *RSGI)
    path = tmp_path / "data.bin"
    data = bytes(range(256)) * 1000
    path.write_bytes(data)
    r = httpx.get(server.url + "/file", params={"path": str(path)})
    assert r.content == data
    assert r.headers["content-length"] == str(len(data))
    r = httpx.get(server.url + "/range", params={"path": str(path), "start": 10, "end": 1010})
    assert r.status_code == 206
    assert r.content == data[10:1010]
    assert r.headers["content-length"] == "1000"
    missing = httpx.get(server.url + "/file", params={"path": str(tmp_path / "nope")})
    assert missing.status_code == 404


def test_large_file_keeps_worker_memory_flat(serve, tmp_path):
    server = serve("rsgi_app:app", *RSGI)
    path = tmp_path / "big.bin"
    with open(path, "wb") as f:
        f.write(b"z" * (50 * 1024 * 1024))

    rss_mib = server.rss_mib

    before = rss_mib()
    peak = before
    with httpx.Client(timeout=60) as client:
        for _ in range(3):
            with client.stream("GET", server.url + "/file", params={"path": str(path)}) as r:
                total = 0
                for chunk in r.iter_bytes():
                    total += len(chunk)
                    peak = max(peak, rss_mib()) if total % (8 << 20) < len(chunk) else peak
            assert total == 50 * 1024 * 1024
    # The file went from disk to socket in bounded chunks, never whole.
    assert peak - before < 30, (before, peak)


def test_errors_become_500_and_are_logged(serve):
    server = serve("rsgi_app:app", *RSGI)
    assert httpx.get(server.url + "/raise").status_code == 500
    server.wait_log("rsgi boom")
    assert "Exception in RSGI application" in server.log()
    assert httpx.get(server.url + "/bad-header").status_code == 500
    server.wait_log("header names and values must be str, not int")
    r = httpx.get(server.url + "/tuple-headers")
    assert (r.text, r.headers["x-a"]) == ("tuple headers", "1")
    assert httpx.get(server.url + "/none").status_code == 500
    server.wait_log("returned without a response")
    assert httpx.get(server.url + "/twice").text == "first"
    server.wait_log("a response was already sent")
    assert httpx.get(server.url + "/").status_code == 200


def test_client_disconnect_awaitable(serve):
    server = serve("rsgi_app:app", *RSGI)
    for _ in range(20):
        with socket.create_connection((server.host, server.port)) as s:
            s.sendall(b"GET /disconnect HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(0.01)

    def seen():
        return httpx.get(server.url + "/stats").json()["disconnects"] == 20

    assert wait_for(seen), httpx.get(server.url + "/stats").json()


def test_streams_cut_by_clients(serve):
    server = serve("rsgi_app:app", *RSGI)
    cut_streams(server, "/stream?n=100000&size=4096&delay=0.001", clients=200)

    def all_cancelled():
        return httpx.get(server.url + "/stats").json()["stream_cancelled"] == 200

    assert wait_for(all_cancelled), httpx.get(server.url + "/stats").json()
    assert httpx.get(server.url + "/").text == "Hello, world!"


def test_lifecycle_hooks(serve, tmp_path):
    marker = tmp_path / "del.txt"
    server = serve("rsgi_app:app", *RSGI, env={"RSGI_DEL_MARKER": str(marker)})
    stats = httpx.get(server.url + "/stats").json()
    assert stats["init"] == 1
    server.signal(signal.SIGTERM)
    assert server.proc.wait(20) == 0
    assert marker.read_text() == "rsgi del ran"


def test_graceful_shutdown(serve):
    server = serve("rsgi_app:app", *RSGI)
    clients = send_before_stop(server, "/slow?delay=1", 4)
    server.signal(signal.SIGINT)
    assert answers(clients) == [b"slow done"] * 4
    assert server.proc.wait(20) == 0


@pytest.mark.parametrize("http2", [False, True])
def test_large_responses_do_not_leak(serve, http2):
    server = serve("rsgi_app:app", *RSGI)

    rss_mib = server.rss_mib

    with httpx.Client(http1=not http2, http2=http2, timeout=30) as client:
        for _ in range(10):
            client.get(server.url + "/big")
        before = rss_mib()
        for _ in range(100):
            assert len(client.get(server.url + "/big").content) == 4 * 1024 * 1024
    assert rss_mib() - before < 100
