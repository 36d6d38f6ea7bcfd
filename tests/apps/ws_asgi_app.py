"""A raw ASGI app with websocket endpoints for the websocket tests. What the
app saw (disconnect codes, errors) is kept in EVENTS and served at GET
/events, so tests can check the server side of each exchange."""

import asyncio
import gc
import json
import os
import threading

# As an app that freezes its objects before forking does.
if os.environ.get("GC_FREEZE"):
    gc.freeze()

EVENTS: list = []
PROGRESS = {"flood_sent": 0}


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "http":
        await http(scope, receive, send)
        return
    handler = ROUTES.get(scope["path"])
    if handler is None:
        await send({"type": "websocket.close", "code": 1008})
        return
    await handler(scope, receive, send)


async def http(scope, receive, send):
    if scope["path"] == "/events":
        body = json.dumps({"events": EVENTS, "progress": PROGRESS}).encode()
    else:
        # With --no-ws an upgrade request arrives here as plain HTTP.
        upgrade = dict(scope["headers"]).get(b"upgrade", b"").decode()
        body = f"plain http, upgrade={upgrade}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


async def connect(receive):
    message = await receive()
    assert message["type"] == "websocket.connect", message


async def echo(scope, receive, send):
    await connect(receive)
    offered = scope["subprotocols"]
    await send({"type": "websocket.accept", "subprotocol": offered[0] if offered else None})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            EVENTS.append({"path": "/echo", "code": message["code"], "reason": message["reason"]})
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


async def scope_info(scope, receive, send):
    await connect(receive)
    await send(
        {"type": "websocket.accept", "headers": [(b"x-extra", b"yes"), (b"set-cookie", b"a=1")]}
    )
    info = {
        key: scope[key]
        for key in ("type", "scheme", "path", "root_path", "http_version", "subprotocols")
    }
    info["query_string"] = scope["query_string"].decode()
    info["raw_path"] = scope["raw_path"].decode()
    info["client"] = list(scope["client"])
    info["headers"] = sorted(name.decode() for name, _ in scope["headers"])
    info["has_method"] = "method" in scope
    info["extensions"] = sorted(scope["extensions"])
    await send({"type": "websocket.send", "text": json.dumps(info)})
    await send({"type": "websocket.close"})


async def close_4001(scope, receive, send):
    await connect(receive)
    await send({"type": "websocket.accept"})
    await receive()
    await send({"type": "websocket.close", "code": 4001, "reason": "go away"})
    # After the close, the next event is the disconnect.
    message = await receive()
    EVENTS.append({"path": "/close-4001", "type": message["type"], "code": message["code"]})


async def reject(scope, receive, send):
    await connect(receive)
    await send({"type": "websocket.close"})


async def deny(scope, receive, send):
    await connect(receive)
    await send(
        {
            "type": "websocket.http.response.start",
            "status": 418,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "websocket.http.response.body", "body": b"no ", "more_body": True})
    await send({"type": "websocket.http.response.body", "body": b"tea"})


async def raise_after_accept(scope, receive, send):
    await connect(receive)
    await send({"type": "websocket.accept"})
    raise RuntimeError("boom after accept")


async def raise_before_accept(scope, receive, send):
    await connect(receive)
    raise RuntimeError("boom before accept")


async def return_without_accept(scope, receive, send):
    await connect(receive)


async def send_from_thread(scope, receive, send):
    """Like a Perspective dashboard: updates made on a background thread are
    sent through the event loop."""
    await connect(receive)
    await send({"type": "websocket.accept"})
    loop = asyncio.get_running_loop()
    count = int(scope["query_string"] or b"100")

    def produce():
        for i in range(count):
            future = asyncio.run_coroutine_threadsafe(
                send({"type": "websocket.send", "text": f"update {i}"}), loop
            )
            try:
                future.result(timeout=10)
            except Exception as exc:  # the client left: stop producing
                EVENTS.append({"path": "/thread", "stopped": type(exc).__name__, "at": i})
                return
        EVENTS.append({"path": "/thread", "done": count})

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    message = await receive()
    while message["type"] != "websocket.disconnect":
        message = await receive()
    await asyncio.to_thread(thread.join)


async def send_from_tasks(scope, receive, send):
    """Frameworks send from tasks other than the handler's."""
    await connect(receive)
    await send({"type": "websocket.accept"})

    async def pusher(n):
        for i in range(20):
            await send({"type": "websocket.send", "text": f"task {n} message {i}"})
            await asyncio.sleep(0)

    await asyncio.gather(*(asyncio.create_task(pusher(n)) for n in range(5)))
    await send({"type": "websocket.close", "code": 1000})


async def flood(scope, receive, send):
    """Sends 1 MiB messages as fast as the server lets it."""
    await connect(receive)
    await send({"type": "websocket.accept"})
    chunk = b"x" * (1024 * 1024)
    try:
        for _ in range(300):
            await send({"type": "websocket.send", "bytes": chunk})
            PROGRESS["flood_sent"] += 1
    except OSError as exc:
        EVENTS.append({"path": "/flood", "error": type(exc).__name__})


async def close_code(scope, receive, send):
    """Accepts, waits for the disconnect and records it."""
    await connect(receive)
    await send({"type": "websocket.accept"})
    message = await receive()
    while message["type"] != "websocket.disconnect":
        message = await receive()
    EVENTS.append({"path": "/wait-close", "code": message["code"]})


async def late_reader(scope, receive, send):
    """Receives nothing for two seconds, then counts what arrived."""
    await connect(receive)
    await send({"type": "websocket.accept"})
    await asyncio.sleep(2)
    count, size = 0, 0
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            break
        count += 1
        size += len(message["bytes"])
        if count == int(scope["query_string"]):
            await send({"type": "websocket.send", "text": f"{count} {size}"})
    EVENTS.append({"path": "/late-reader", "count": count})


async def quiet(scope, receive, send):
    """Accepts and waits for the close, keeping nothing: a test that counts
    the worker's objects sees only the server's."""
    await connect(receive)
    await send({"type": "websocket.accept"})
    while (await receive())["type"] != "websocket.disconnect":
        pass


ROUTES = {
    "/quiet": quiet,
    "/late-reader": late_reader,
    "/echo": echo,
    "/scope": scope_info,
    "/close-4001": close_4001,
    "/reject": reject,
    "/deny": deny,
    "/raise-after": raise_after_accept,
    "/raise-before": raise_before_accept,
    "/no-accept": return_without_accept,
    "/thread": send_from_thread,
    "/tasks": send_from_tasks,
    "/flood": flood,
    "/wait-close": close_code,
}
