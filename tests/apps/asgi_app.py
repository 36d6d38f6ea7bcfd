"""A raw ASGI app with one route per behaviour the tests provoke."""

import asyncio
import json
import os
import threading
import time
from urllib.parse import parse_qs

from diorite._diorite import ClientDisconnected, deferred_release_count

STATS = {"disconnects": 0, "stream_cancelled": 0, "thread_responses": 0}


class Marked(bytes):
    """`bytes` that create the file `mark` names when they are freed."""

    def __new__(cls, data: bytes, mark: str):
        made = super().__new__(cls, data)
        made.mark = mark
        return made

    def __del__(self):
        with open(self.mark, "w"):
            pass


async def read_body(receive):
    chunks, calls = [], 0
    while True:
        message = await receive()
        calls += 1
        if message["type"] == "http.disconnect":
            raise ClientDisconnected("gone while reading")
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), calls


async def respond(send, status=200, body=b"", headers=()):
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain"), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


def jsonable(value):
    if isinstance(value, bytes):
        return {"bytes": value.decode("latin-1")}
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


async def lifespan(scope, receive, send):
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            started = os.environ.get("STARTUP_MARKER")
            if started:
                with open(started, "w") as f:
                    f.write("startup began")
            if os.environ.get("STARTUP_BLOCKS"):
                # Synchronous start-up work (loading a model) that holds
                # the loop; a stop signal arrives in the middle of it.
                time.sleep(float(os.environ["STARTUP_BLOCKS"]))
            if os.environ.get("STARTUP_HANGS"):
                # Waiting for a database that never answers.
                await asyncio.Event().wait()
            if os.environ.get("FAIL_STARTUP"):
                await send({"type": "lifespan.startup.failed", "message": "database unreachable"})
                return
            scope["state"]["started_by"] = "lifespan"
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            marker = os.environ.get("SHUTDOWN_MARKER")
            if marker:
                with open(marker, "w") as f:
                    f.write("lifespan shutdown ran")
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        return await lifespan(scope, receive, send)
    path = scope["path"]
    query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}

    if path == "/":
        return await respond(send, body=b"Hello, world!")

    if path.startswith("/scope"):
        body = json.dumps(jsonable({k: v for k, v in scope.items()})).encode()
        return await respond(send, body=body, headers=[(b"content-type", b"application/json")])

    if path == "/echo":
        body, calls = await read_body(receive)
        return await respond(send, body=body, headers=[(b"x-receive-calls", str(calls).encode())])

    if path == "/tasks":
        # receive() and send() wrapped in tasks, as Django Channels and
        # threads using run_coroutine_threadsafe do; a receive cancelled
        # while it waits must not swallow a piece of the body.
        waiting = asyncio.create_task(receive())
        await asyncio.sleep(0)
        chunks, more = [], True
        if waiting.done():
            message = waiting.result()
            chunks.append(message["body"])
            more = message["more_body"]
        else:
            waiting.cancel()
            STATS["receive_cancelled"] = STATS.get("receive_cancelled", 0) + 1
        while more:
            message = await asyncio.create_task(receive())
            chunks.append(message["body"])
            more = message["more_body"]
        start = {"type": "http.response.start", "status": 200, "headers": []}
        await asyncio.ensure_future(send(start))
        loop = asyncio.get_running_loop()
        body = {"type": "http.response.body", "body": b"".join(chunks)}
        sent = asyncio.run_coroutine_threadsafe(send(body), loop)
        await asyncio.wrap_future(sent)
        return

    if path == "/late-stream":
        # The head is ready, but the streamed body starts only after the
        # client may have left.
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await asyncio.sleep(float(query.get("delay", 0.15)))
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        await send({"type": "http.response.body", "body": b"b"})
        return

    if path == "/echo-length":
        body, _ = await read_body(receive)
        return await respond(send, body=str(len(body)).encode())

    if path == "/stream":
        n, size = int(query.get("n", 10)), int(query.get("size", 10))
        delay = float(query.get("delay", 0))
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain")],
            }
        )
        try:
            for i in range(n):
                await send(
                    {
                        "type": "http.response.body",
                        "body": (b"%d" % (i % 10)) * size,
                        "more_body": True,
                    }
                )
                if delay:
                    await asyncio.sleep(delay)
        except ClientDisconnected:
            STATS["stream_cancelled"] += 1
            raise
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return

    if path == "/wait-disconnect":
        # Streams one chunk, then waits for the client to leave.
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"waiting", "more_body": True})
        message = await receive()
        while message["type"] != "http.disconnect":
            message = await receive()
        STATS["disconnects"] += 1
        return

    if path == "/respond-then-read":
        # Starts the response, then reads the body, then finishes.
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"started;", "more_body": True})
        message = await receive()
        while message["type"] == "http.request" and message.get("more_body"):
            message = await receive()
        await send({"type": "http.response.body", "body": message["type"].encode()})
        return

    if path == "/raise-before":
        raise RuntimeError("boom before start")

    if path == "/raise-mid":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise RuntimeError("boom mid-stream")

    if path == "/no-response":
        return

    if path == "/bad-message":
        await send({"type": "http.response.body", "body": b"no start"})
        return

    if path == "/slow":
        await asyncio.sleep(float(query.get("delay", 1)))
        return await respond(send, body=b"slow done")

    if path == "/pathsend":
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/octet-stream")],
            }
        )
        await send({"type": "http.response.pathsend", "path": query["file"]})
        return

    if path == "/trailers":
        headers = [(b"trailer", b"x-checksum")]  # HTTP/1.1 sends only declared trailers
        await send(
            {"type": "http.response.start", "status": 200, "headers": headers, "trailers": True}
        )
        await send({"type": "http.response.body", "body": b"body", "more_body": False})
        await send(
            {
                "type": "http.response.trailers",
                "headers": [(b"x-checksum", b"abc123")],
                "more_trailers": False,
            }
        )
        return

    if path == "/thread":
        # The response is produced from a background thread, which also
        # holds the last references to send/receive/scope and drops them.
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        holder = {"send": send, "receive": receive, "scope": scope}

        def worker():
            fut = asyncio.run_coroutine_threadsafe(
                respond(holder["send"], body=b"from a thread"), loop
            )
            fut.result()
            STATS["thread_responses"] += 1
            holder.clear()
            loop.call_soon_threadsafe(done.set_result, None)

        del send, receive
        threading.Thread(target=worker).start()
        await done
        return

    if path == "/big":
        size = int(query.get("size", 4 * 1024 * 1024))
        return await respond(send, body=os.urandom(16) + b"x" * (size - 16))

    if path == "/marked-big":
        # A body shared with hyper (64 KiB) that says when Python frees it.
        return await respond(send, body=Marked(b"x" * 65536, query["mark"]))

    if path == "/stats":
        stats = dict(STATS, deferred_releases=deferred_release_count())
        return await respond(send, body=json.dumps(stats).encode())

    await respond(send, status=404, body=b"not found")
