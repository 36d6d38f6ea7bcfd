"""Apps that report what they learn about the connection's TLS: `asgi`
(http and websocket), `wsgi` and `rsgi`, each answering JSON."""

import json


def _tls(scope):
    tls = scope.get("extensions", {}).get("tls")
    return None if tls is None else {**tls, "client_cert_chain": list(tls["client_cert_chain"])}


async def asgi(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    info = {"scheme": scope["scheme"], "http_version": scope["http_version"], "tls": _tls(scope)}
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        message = await receive()
        await send(
            {"type": "websocket.send", "text": json.dumps({**info, "echo": message["text"]})}
        )
        await send({"type": "websocket.close"})
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    info["body_length"] = len(body)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": json.dumps(info).encode()})


def wsgi(environ, start_response):
    info = {
        "scheme": environ["wsgi.url_scheme"],
        "https": environ.get("HTTPS"),
        "protocol": environ["SERVER_PROTOCOL"],
    }
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(info).encode()]


async def rsgi(scope, proto):
    info = {"scheme": scope.scheme, "http_version": scope.http_version, "proto": scope.proto}
    if scope.proto == "ws":
        transport = await proto.accept()
        message = await transport.receive()
        await transport.send_str(json.dumps({**info, "echo": message.data}))
        proto.close(1000)
        return
    proto.response_str(200, [("content-type", "application/json")], json.dumps(info))
