"""Real frameworks from PyPI, unchanged, under diorite."""

import json
import time

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect


def wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


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


@pytest.mark.parametrize("interface", ["asgi", "asginl"])
def test_starlette_websockets(serve, interface):
    server = serve("starlette_app:app", "--interface", interface)
    ws_base = f"ws://{server.host}:{server.port}"
    with connect(ws_base + "/ws/json", subprotocols=["json.v1"]) as ws:
        assert ws.subprotocol == "json.v1"
        for n in range(1, 4):
            ws.send(json.dumps({"n": n}))
            assert json.loads(ws.recv()) == {"echo": {"n": n}, "count": n}
        ws.close(code=4000)
    with connect(ws_base + "/ws/iter") as ws:
        ws.send("shout")
        assert ws.recv() == "SHOUT"
        ws.send("stop")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv()
    assert closed.value.rcvd.code == 4001
    assert closed.value.rcvd.reason == "stopped"
    wait_until(lambda: httpx.get(server.url + "/ws/stats").json()["ws_disconnects"] == [4000])
    # An unknown websocket path is refused before accept.
    with pytest.raises(InvalidStatus) as refused, connect(ws_base + "/ws/missing"):
        pass
    assert refused.value.response.status_code == 403


@pytest.mark.parametrize("interface", ["asgi", "asginl"])
def test_django_channels(serve, interface):
    server = serve("channels_app:application", "--interface", interface)
    ws_base = f"ws://{server.host}:{server.port}"
    with connect(ws_base + "/ws/async/lobby/") as ws:
        ws.send(json.dumps({"hello": "channels"}))
        assert json.loads(ws.recv()) == {"room": "lobby", "echo": {"hello": "channels"}}
    with connect(ws_base + "/ws/sync/") as ws:
        ws.send("text")
        assert json.loads(ws.recv()) == {"sync": "text"}
        ws.send(b"abc")
        assert ws.recv() == b"cba"
        ws.send("bye")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv()
    assert closed.value.rcvd.code == 4001
    with pytest.raises(InvalidStatus) as refused, connect(ws_base + "/ws/sync/?deny"):
        pass
    assert refused.value.response.status_code == 403

    def closed_consumers():
        return httpx.get(server.url + "/stats/").json()["closed"]

    wait_until(lambda: {c["consumer"] for c in closed_consumers()} == {"async", "sync"})
    codes = {c["consumer"]: c["code"] for c in closed_consumers()}
    assert codes["async"] == 1000
