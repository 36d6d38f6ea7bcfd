"""An ASGI app for the metrics tests: known statuses, a slow request, one
that blocks the event loop, and a websocket echo."""

import asyncio
import time


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": message.get("text")})
    path = scope["path"]
    status, body = 200, b"hello"
    if path == "/missing":
        status, body = 404, b"no such page"
    elif path == "/fail":
        raise RuntimeError("the app failed on purpose")
    elif path == "/slow":
        await asyncio.sleep(float(scope["query_string"] or b"1.5"))
    elif path == "/block":
        # Blocks the event loop itself, as a sync call in an async app does.
        time.sleep(float(scope["query_string"] or b"5"))
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": body})
