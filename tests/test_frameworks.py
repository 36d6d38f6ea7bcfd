"""Real frameworks from PyPI, unchanged, under diorite."""

import httpx
import pytest


@pytest.mark.parametrize("interface", ["asgi", "asginl"])
def test_starlette(serve, interface):
    server = serve("starlette_app:app", "--interface", interface)
    base = server.url
    if interface == "asgi":
        assert httpx.get(base + "/").text == "hello from lifespan"
    assert httpx.get(base + "/items/7?q=x").json() == {"id": 7, "q": "x"}
    r = httpx.post(base + "/create", json={"a": [1, 2]})
    assert r.status_code == 201 and r.json() == {"received": {"a": [1, 2]}}
    assert httpx.post(base + "/form", data={"name": "diorite", "kind": "rock"}).json() == {
        "name": "diorite",
        "kind": "rock",
    }
    with httpx.stream("GET", base + "/stream?n=50") as r:
        body = r.read()
    assert body.count(b"\n") == 50 * 100
    assert httpx.get(base + "/sync").text == "sync view ran in a thread"
    assert httpx.get(base + "/missing").status_code == 404


def test_fastapi(serve):
    server = serve("fastapi_app:app")
    base = server.url
    assert httpx.get(base + "/").json() == {"hello": "world"}
    assert httpx.get(base + "/items/3?q=z").json() == {"item_id": 3, "q": "z"}
    assert httpx.get(base + "/items/404").status_code == 404
    assert httpx.get(base + "/items/abc").status_code == 422
    r = httpx.post(base + "/items", json={"name": "hammer", "price": 10})
    assert r.json() == {"name": "hammer", "price_with_tax": 12.0}
    assert httpx.post(base + "/items", json={"name": "x"}).status_code == 422
    assert httpx.get(base + "/sync").json() == {"thread": "pool"}
    with httpx.Client(http1=False, http2=True) as client:
        assert client.get(base + "/").json() == {"hello": "world"}
