"""What the apps that report on a connection share (proxy_app, tls_app):
an ASGI app and an RSGI app that answer JSON built by a function of the
scope, over HTTP and over a websocket (echoing one message)."""

import json


def asgi_reporter(info_of, body_length=False):
    """An ASGI app answering `info_of(scope)` as JSON; with `body_length`,
    plus the length of the request body it read."""

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        info = info_of(scope)
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            message = await receive()
            echo = json.dumps({**info, "echo": message["text"]})
            await send({"type": "websocket.send", "text": echo})
            await send({"type": "websocket.close"})
            return
        length = 0
        while True:
            message = await receive()
            length += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        if body_length:
            info["body_length"] = length
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": json.dumps(info).encode()})

    return app


def rsgi_reporter(info_of):
    """An RSGI app answering `info_of(scope)` as JSON."""

    async def app(scope, proto):
        info = info_of(scope)
        if scope.proto == "ws":
            transport = await proto.accept()
            message = await transport.receive()
            await transport.send_str(json.dumps({**info, "echo": message.data}))
            proto.close(1000)
            return
        proto.response_str(200, [("content-type", "application/json")], json.dumps(info))

    return app
