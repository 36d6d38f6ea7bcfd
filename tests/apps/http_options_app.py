"""An ASGI app for tests/test_http_options.py: a response streamed for as
long as the client takes it, and how much of it the app got to send."""

import json

SENT = {"bytes": 0}
CHUNK = b"x" * 65536


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    if scope["path"] == "/stream":
        total = int(scope["query_string"] or 64 * 1024 * 1024)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        while SENT["bytes"] < total:
            await send({"type": "http.response.body", "body": CHUNK, "more_body": True})
            SENT["bytes"] += len(CHUNK)
        await send({"type": "http.response.body", "body": b""})
        return
    body = b"Hello, world!"
    if scope["path"] == "/sent":
        body = json.dumps(SENT).encode()
    elif scope["path"] == "/echo":
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})
