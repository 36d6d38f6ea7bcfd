"""An RSGI app (Granian's interface) with one route per behaviour tested."""

import asyncio
import json
import os
from urllib.parse import parse_qs

from diorite._diorite import ClientDisconnected, deferred_release_count

STATS = {"stream_cancelled": 0, "disconnects": 0, "init": 0}


class App:
    def __rsgi_init__(self, loop):
        STATS["init"] += 1
        STATS["loop_running"] = loop.is_running()

    def __rsgi_del__(self, loop):
        marker = os.environ.get("RSGI_DEL_MARKER")
        if marker:
            with open(marker, "w") as f:
                f.write("rsgi del ran")

    async def __rsgi__(self, scope, proto):
        assert scope.proto == "http"
        query = {k: v[0] for k, v in parse_qs(scope.query_string).items()}
        path = scope.path
        text = [("content-type", "text/plain")]
        binary = [("content-type", "application/octet-stream")]

        if path == "/":
            return proto.response_str(200, text, "Hello, world!")
        if path == "/bytes":
            return proto.response_bytes(200, binary, b"\x00\x01\x02")
        if path == "/empty":
            return proto.response_empty(204, [("x-empty", "yes")])
        if path.startswith("/scope"):
            h = scope.headers
            data = {
                "proto": scope.proto,
                "rsgi_version": scope.rsgi_version,
                "http_version": scope.http_version,
                "server": scope.server,
                "client": scope.client,
                "scheme": scope.scheme,
                "method": scope.method,
                "path": scope.path,
                "query_string": scope.query_string,
                "authority": scope.authority,
                "keys": h.keys(),
                "values_count": len(h.values()),
                "items": h.items(),
                "len": len(h),
                "iter": list(h),
                "get": h.get("x-multi"),
                "get_default": h.get("x-missing", "dflt"),
                "get_all": h.get_all("x-multi"),
                "getitem": h["x-first"] if "x-first" in h else None,
                "contains_missing": "x-missing" in h,
            }
            try:
                h["x-missing"]
            except KeyError:
                data["keyerror"] = True
            return proto.response_str(200, [("content-type", "application/json")], json.dumps(data))
        if path == "/echo":
            body = await proto()
            return proto.response_bytes(200, [], body)
        if path == "/echo-iter":
            chunks = [chunk async for chunk in proto]
            headers = [("x-chunks", str(len(chunks)))]
            return proto.response_bytes(200, headers, b"".join(chunks))
        if path == "/stream":
            n, size = int(query.get("n", 10)), int(query.get("size", 10))
            delay = float(query.get("delay", 0))
            transport = proto.response_stream(200, text)
            try:
                for i in range(n):
                    if i % 2:
                        await transport.send_str(str(i % 10) * size)
                    else:
                        await transport.send_bytes(b"%d" % (i % 10) * size)
                    if delay:
                        await asyncio.sleep(delay)
            except ClientDisconnected:
                STATS["stream_cancelled"] += 1
                raise
            return
        if path == "/file":
            return proto.response_file(200, binary, query["path"])
        if path == "/range":
            start, end = int(query["start"]), int(query["end"])
            return proto.response_file_range(206, [], query["path"], start, end)
        if path == "/disconnect":
            await proto.client_disconnect()
            STATS["disconnects"] += 1
            return
        if path == "/bad-header":
            return proto.response_str(200, [("x-count", 5)], "never")
        if path == "/tuple-headers":
            return proto.response_str(200, (("x-a", "1"),), "tuple headers")
        if path == "/raise":
            raise RuntimeError("rsgi boom")
        if path == "/none":
            return
        if path == "/twice":
            proto.response_str(200, [], "first")
            proto.response_str(200, [], "second")
            return
        if path == "/big":
            size = int(query.get("size", 4 * 1024 * 1024))
            return proto.response_bytes(200, [], os.urandom(16) + b"x" * (size - 16))
        if path == "/slow":
            await asyncio.sleep(float(query.get("delay", 1)))
            return proto.response_str(200, [], "slow done")
        if path == "/thread":
            # Answered from an executor thread, not the loop's.
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(None, proto.response_str, 200, text, "from a thread")
        if path == "/stats":
            stats = dict(STATS, deferred_releases=deferred_release_count())
            return proto.response_str(200, [], json.dumps(stats))
        return proto.response_str(404, text, "not found")


app = App()


async def plain(scope, proto):
    """A bare coroutine function is an RSGI app too."""
    proto.response_str(200, [], "plain function")
