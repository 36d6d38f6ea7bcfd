"""Apps that answer with what they learn about the client and the URL, as
JSON: `asgi` (http and websocket), `wsgi` and `rsgi`. Used behind nginx and
HAProxy."""

import json

from reporting import asgi_reporter, rsgi_reporter


def _asgi_info(scope):
    headers = dict(scope["headers"])
    return {
        "client": list(scope["client"]) if scope.get("client") else None,
        "server": list(scope["server"]) if scope.get("server") else None,
        "scheme": scope["scheme"],
        "root_path": scope["root_path"],
        "path": scope["path"],
        "raw_path": scope["raw_path"].decode("latin-1"),
        "host": headers.get(b"host", b"").decode("latin-1"),
        "tls": "tls" in scope.get("extensions", {}),
    }


asgi = asgi_reporter(_asgi_info)


def wsgi(environ, start_response):
    keys = (
        "REMOTE_ADDR",
        "REMOTE_PORT",
        "wsgi.url_scheme",
        "HTTPS",
        "HTTP_HOST",
        "SERVER_NAME",
        "SERVER_PORT",
        "SCRIPT_NAME",
        "PATH_INFO",
        "HTTP_X_FORWARDED_FOR",
    )
    info = {key: environ.get(key) for key in keys}
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(info).encode()]


def _rsgi_info(scope):
    return {
        "client": scope.client,
        "server": scope.server,
        "scheme": scope.scheme,
        "path": scope.path,
        "host": scope.headers.get("host"),
        "proto": scope.proto,
    }


rsgi = rsgi_reporter(_rsgi_info)
