"""Apps that answer with what they learn about the client and the URL, as
JSON: `asgi` (http and websocket), `wsgi` and `rsgi`. Used behind nginx and
HAProxy."""

import json


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


async def asgi(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    info = _asgi_info(scope)
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        message = await receive()
        await send(
            {"type": "websocket.send", "text": json.dumps({**info, "echo": message["text"]})}
        )
        await send({"type": "websocket.close"})
        return
    while (await receive()).get("more_body"):
        pass
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": json.dumps(info).encode()})


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


async def rsgi(scope, proto):
    info = {
        "client": scope.client,
        "server": scope.server,
        "scheme": scope.scheme,
        "path": scope.path,
        "host": scope.headers.get("host"),
        "proto": scope.proto,
    }
    if scope.proto == "ws":
        transport = await proto.accept()
        message = await transport.receive()
        await transport.send_str(json.dumps({**info, "echo": message.data}))
        proto.close(1000)
        return
    proto.response_str(200, [("content-type", "application/json")], json.dumps(info))
