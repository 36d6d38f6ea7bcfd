"""The benchmark's ASGI app: one route per scenario."""

import json

JSON = json.dumps(
    {"items": [{"id": i, "name": f"item {i}", "tags": ["a", "b"]} for i in range(60)]}
).encode()[:4096]
ONE_MIB = b"x" * (1 << 20)
FOUR_MIB = b"x" * (4 << 20)
CHUNK = b"y" * 1024


async def app(scope, receive, send):
    if scope["type"] == "websocket":
        return await echo(receive, send)
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/echo":
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        return await _send(send, body, b"application/octet-stream")
    if path == "/stream":
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain")],
            }
        )
        for _ in range(100):
            await send({"type": "http.response.body", "body": CHUNK, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    body, kind = {
        "/json": (JSON, b"application/json"),
        "/1m": (ONE_MIB, b"application/octet-stream"),
        "/4m": (FOUR_MIB, b"application/octet-stream"),
    }.get(path, (b"Hello, world!", b"text/plain"))
    await _send(send, body, kind)


async def _send(send, body, kind):
    headers = [(b"content-type", kind), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def echo(receive, send):
    """Websocket echo: every message goes back as it came."""
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})
