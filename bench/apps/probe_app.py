"""The probes' and the soak's app: the benchmark apps plus the few routes
that attacks and long runs need, for ASGI (`app`) and WSGI (`wsgi_app`).

/slow answers after SLOW seconds (a request in flight during a stop),
/drain reads the whole body and answers with its length (so an upload is
taken in full without the app keeping it), /sse streams CHUNKS chunks
slowly enough for a client to cancel half-way.
"""

import asyncio
import time

from .asgi_app import app as bench_asgi
from .wsgi_app import app as bench_wsgi

SLOW = 3.0
CHUNKS = 50
CHUNK = b"z" * 4096


async def app(scope, receive, send):
    if scope["type"] != "http" or scope["path"] not in ("/slow", "/drain", "/sse"):
        return await bench_asgi(scope, receive, send)
    path = scope["path"]
    if path == "/slow":
        await asyncio.sleep(SLOW)
        return await _send(send, b"slept")
    if path == "/drain":
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            size += len(message.get("body", b""))
            more = message.get("more_body", False)
        return await _send(send, str(size).encode())
    start = {"type": "http.response.start", "status": 200, "headers": []}
    await send(start)
    for _ in range(CHUNKS):
        await send({"type": "http.response.body", "body": CHUNK, "more_body": True})
        await asyncio.sleep(0.01)
    await send({"type": "http.response.body", "body": b""})


async def _send(send, body):
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def wsgi_app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/slow":
        time.sleep(SLOW)
        return _wsgi_send(start_response, b"slept")
    if path == "/drain":
        stream, size = environ["wsgi.input"], 0
        while part := stream.read(1 << 16):
            size += len(part)
        return _wsgi_send(start_response, str(size).encode())
    return bench_wsgi(environ, start_response)


def _wsgi_send(start_response, body):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
