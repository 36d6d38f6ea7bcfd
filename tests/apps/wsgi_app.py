"""A raw WSGI app with one route per PEP 3333 behaviour tested."""

import json
import os
import sys
import threading
import time
from urllib.parse import parse_qs

STATS = {"closed": 0, "stream_started": 0}
LOCK = threading.Lock()


class Tracked:
    """A streamed body (made lazily) whose close() the server must call."""

    def __init__(self, n, size, delay=0.0):
        self.n, self.size, self.delay = n, size, delay

    def __iter__(self):
        with LOCK:
            STATS["stream_started"] += 1
        for i in range(self.n):
            if self.delay:
                time.sleep(self.delay)
            yield (b"%d" % (i % 10)) * self.size

    def close(self):
        with LOCK:
            STATS["closed"] += 1


def text(start_response, body, status="200 OK", headers=()):
    start_response(status, [("Content-Type", "text/plain"), *headers])
    return [body]


def app(environ, start_response):
    path = environ["PATH_INFO"]
    query = {k: v[0] for k, v in parse_qs(environ["QUERY_STRING"]).items()}
    stream = environ["wsgi.input"]

    if path == "/":
        return text(start_response, b"Hello, world!", headers=[("Content-Length", "13")])
    if path.startswith("/environ"):
        data = {k: v for k, v in environ.items() if isinstance(v, (str, bool, int, tuple))}
        data["wsgi.errors_is_stderr"] = environ["wsgi.errors"] is sys.stderr
        data["has_file_wrapper"] = callable(environ.get("wsgi.file_wrapper"))
        body = json.dumps(data).encode()
        return text(start_response, body, headers=[("Content-Type", "application/json")])
    if path == "/echo":
        return text(start_response, stream.read())
    if path == "/echo-sized":
        size = int(query.get("n", 1000))
        parts = []
        while True:
            part = stream.read(size)
            if not part:
                break
            assert len(part) <= size
            parts.append(part)
        return text(start_response, b"".join(parts), headers=[("X-Parts", str(len(parts)))])
    if path == "/lines":
        first = stream.readline()
        limited = stream.readline(3)
        rest = stream.readlines()
        body = json.dumps([first.decode(), limited.decode(), [r.decode() for r in rest]])
        return text(start_response, body.encode())
    if path == "/iter-lines":
        return text(start_response, str(sum(1 for _ in stream)).encode())
    if path == "/upload-length":
        total = 0
        while chunk := stream.read(65536):
            total += len(chunk)
        return text(start_response, str(total).encode())
    if path == "/stream":
        n, size = int(query.get("n", 10)), int(query.get("size", 10))
        delay = float(query.get("delay", 0))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Tracked(n, size, delay)
    if path == "/write":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written ")
        write(b"then ")
        return [b"returned"]
    if path == "/file":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        f = open(query["path"], "rb")  # noqa: SIM115 - the server closes it
        if "seek" in query:
            f.seek(int(query["seek"]))
        return environ["wsgi.file_wrapper"](f, 65536)
    if path == "/raise":
        raise RuntimeError("wsgi boom")
    if path == "/raise-in-iter":

        def broken():
            yield b"partial"
            raise RuntimeError("wsgi boom in iteration")

        start_response("200 OK", [])
        return broken()
    if path == "/non-iterable":
        start_response("200 OK", [])
        return 42
    if path == "/twice":
        start_response("200 OK", [])
        start_response("200 OK", [])
        return [b"never"]
    if path == "/exc-info":
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise ValueError("replaced")
        except ValueError:
            start_response(
                "503 Service Unavailable", [("Content-Type", "text/plain")], sys.exc_info()
            )
        return [b"error page"]
    if path == "/bad-header":
        # Values must be latin-1 str; names must be valid tokens.
        kind = query.get("kind", "int")
        bad = {"int": ("X-Count", 5), "utf8": ("X-Name", "\u20ac"), "name": ("Bad Name", "v")}
        start_response("200 OK", [bad[kind]])
        return [b"never"]
    if path == "/tuple-headers":
        start_response("200 OK", (("X-A", "1"), ("X-B", "caf\u00e9")))
        return (b"tuple", b" body")
    if path == "/no-start":
        return [b"nothing started"]
    if path == "/sleep":
        time.sleep(float(query.get("s", 0.5)))
        return text(start_response, b"slept")
    if path == "/compute":
        # Python that holds the GIL, as a template render or a serializer.
        end = time.perf_counter() + float(query.get("s", 0.003))
        while time.perf_counter() < end:
            pass
        return text(start_response, b"computed")
    if path == "/big":
        size = int(query.get("size", 4 * 1024 * 1024))
        body = os.urandom(16) + b"x" * (size - 16)
        return text(start_response, body, headers=[("Content-Length", str(size))])
    if path == "/pool-threads":
        # The WSGI pool's threads, by the names the server gives them.
        names = []
        for task in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{task}/comm") as f:
                names.append(f.read().strip())
        count = sum(1 for n in names if n.startswith("diorite-py-") and n[11:].isdigit())
        return text(start_response, str(count).encode())
    if path == "/stats":
        with LOCK:
            return text(start_response, json.dumps(STATS).encode())
    return text(start_response, b"not found", status="404 Not Found")


def validated():
    from wsgiref.validate import validator

    return validator(app)


validated_app = validated()
