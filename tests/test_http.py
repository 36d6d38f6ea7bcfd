"""HTTP/1.1 and HTTP/2 over the same port, as real clients speak them."""

import socket

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
