"""The benchmark's WSGI app: one route per scenario."""

from .asgi_app import CHUNK, FOUR_MIB, JSON, ONE_MIB


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/echo":
        size = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(size)
        return _send(start_response, body, "application/octet-stream")
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (CHUNK for _ in range(100))
    body, kind = {
        "/json": (JSON, "application/json"),
        "/1m": (ONE_MIB, "application/octet-stream"),
        "/4m": (FOUR_MIB, "application/octet-stream"),
    }.get(path, (b"Hello, world!", "text/plain"))
    return _send(start_response, body, kind)


def _send(start_response, body, kind):
    start_response("200 OK", [("Content-Type", kind), ("Content-Length", str(len(body)))])
    return [body]
