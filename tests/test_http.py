"""HTTP/1.1 and HTTP/2 over the same port, as real clients speak them."""

import socket
import time

import h11
import httpx
import pytest
from conftest import pipelined_bodies


def test_hello(serve):
    server = serve("asgi_app:app")
    r = httpx.get(server.url + "/")
    assert r.status_code == 200
    assert r.text == "Hello, world!"
    assert r.headers["content-type"] == "text/plain"
    assert "date" in r.headers


def test_keep_alive_reuses_one_connection(serve):
    server = serve("asgi_app:app")
    with httpx.Client() as client:
        ports = set()
        for _ in range(20):
            r = client.get(server.url + "/", extensions={})
            assert r.status_code == 200
            ports.add(r.extensions["network_stream"].get_extra_info("client_addr")[1])
        assert len(ports) == 1


def test_pipelined_requests_answered_in_order(serve):
    server = serve("asgi_app:app")
    data = server.raw(
        b"GET /scope?n=1 HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /scope?n=3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    bodies = pipelined_bodies(data)
    assert len(bodies) == 3
    assert b'"query_string": {"bytes": "n=1"}' in bodies[0]
    assert bodies[1] == b"Hello, world!"
    assert b'"query_string": {"bytes": "n=3"}' in bodies[2]


def test_chunked_request_body(serve):
    server = serve("asgi_app:app")

    def chunks():
        for i in range(50):
            yield bytes([65 + i % 26]) * 1000

    r = httpx.post(server.url + "/echo", content=chunks())
    assert r.status_code == 200
    assert r.content == b"".join(chunks())


def test_chunked_streaming_response(serve):
    server = serve("asgi_app:app")
    with httpx.stream("GET", server.url + "/stream?n=20&size=100") as r:
        assert r.headers.get("transfer-encoding") == "chunked"
        pieces = list(r.iter_bytes())
    body = b"".join(pieces)
    assert len(body) == 2000
    assert body.startswith(b"0" * 100 + b"1" * 100)


def chunked_get(server, target: str, *, wait: float = 0, rcvbuf: int = 0):
    """GETs `target` with h11 and returns the body and its chunk sizes as
    they came on the wire. `wait` seconds pass before the first read, with
    the socket's receive buffer at `rcvbuf` when given."""
    client = h11.Connection(h11.CLIENT)
    with socket.socket() as s:
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(10)
        s.connect((server.host, server.port))
        request = h11.Request(method="GET", target=target, headers=[("host", "x")])
        s.sendall(client.send(request) + client.send(h11.EndOfMessage()))
        time.sleep(wait)
        body, sizes, chunk = bytearray(), [], 0
        while True:
            event = client.next_event()
            if event is h11.NEED_DATA:
                client.receive_data(s.recv(65536))
            elif isinstance(event, h11.Response):
                assert event.status_code == 200
            elif isinstance(event, h11.Data):
                body += event.data
                chunk += len(event.data)
                if event.chunk_end:
                    sizes.append(chunk)
                    chunk = 0
            elif isinstance(event, h11.EndOfMessage):
                return bytes(body), sizes


@pytest.mark.parametrize("app", ["asgi_app:app", "rsgi_app:app", "wsgi_app:app"])
def test_chunks_waiting_for_a_slow_client_go_out_joined(serve, app):
    interface = app.split("_")[0]
    server = serve(app, "--interface", interface)
    n = 2000
    # The client reads nothing for a while: hyper's writes stop, and the
    # app's 1 KB chunks queue up behind them (up to the stream's 512 KiB
    # budget). Once the client reads, what queued goes out in few chunks;
    # the rest may go one by one, as the app makes them.
    body, sizes = chunked_get(server, f"/stream?n={n}&size=1000", wait=1, rcvbuf=4096)
    assert body == b"".join(b"%d" % (i % 10) * 1000 for i in range(n))
    assert sum(size for size in sizes if size > 1000) >= 256_000, sizes[:20]
    # Up to 64 KiB each, and never part of a chunk.
    assert max(sizes) <= 64 * 1024
    assert all(size % 1000 == 0 for size in sizes)


@pytest.mark.parametrize("app", ["asgi_app:app", "rsgi_app:app", "wsgi_app:app"])
def test_a_chunk_sent_alone_is_not_held_for_the_next(serve, app):
    interface = app.split("_")[0]
    server = serve(app, "--interface", interface)
    _, sizes = chunked_get(server, "/stream?n=4&size=5&delay=0.3")
    assert sizes == [5, 5, 5, 5]


def test_http2_prior_knowledge(serve):
    server = serve("asgi_app:app")
    with httpx.Client(http1=False, http2=True) as client:
        r = client.get(server.url + "/scope")
        assert r.http_version == "HTTP/2"
        scope = r.json()
        assert scope["http_version"] == "2"
        headers = {k["bytes"]: v["bytes"] for k, v in scope["headers"]}
        assert headers["host"] == f"{server.host}:{server.port}"
        # Many concurrent streams on one connection.
        rs = [client.get(server.url + "/") for _ in range(10)]
        assert all(r.text == "Hello, world!" for r in rs)
        r = client.post(server.url + "/echo", content=b"x" * 100_000)
        assert r.content == b"x" * 100_000


def test_http1_only_refuses_http2(serve):
    server = serve("asgi_app:app", "--http", "1")
    assert httpx.get(server.url + "/").http_version == "HTTP/1.1"
    with httpx.Client(http1=False, http2=True) as client, pytest.raises(httpx.HTTPError):
        client.get(server.url + "/")


def test_http2_only_refuses_http1(serve):
    server = serve("asgi_app:app", "--http", "2")
    with httpx.Client(http1=False, http2=True) as client:
        assert client.get(server.url + "/").http_version == "HTTP/2"
    with pytest.raises(httpx.HTTPError):
        httpx.get(server.url + "/")


def test_malformed_request_gets_400(serve):
    server = serve("asgi_app:app")
    with socket.create_connection((server.host, server.port)) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header Without Colon\r\n\r\n")
        reply = s.recv(4096)
    assert reply.startswith(b"HTTP/1.1 400")
    assert httpx.get(server.url + "/").status_code == 200


def test_head_has_no_body(serve):
    server = serve("asgi_app:app")
    data = server.raw(b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert body == b""
