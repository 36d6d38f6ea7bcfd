"""An RSGI app with websocket routes (Granian's `proto == "ws"` scopes)."""

import json

EVENTS: list = []


async def app(scope, proto):
    if scope.proto == "http":
        body = json.dumps({"events": EVENTS})
        proto.response_str(200, [("content-type", "application/json")], body)
        return
    assert scope.proto == "ws"
    if scope.path == "/reject":
        proto.close(403)
        return
    if scope.path == "/raise-before":
        raise RuntimeError("boom before accept")
    transport = await proto.accept()
    if scope.path == "/echo":
        while True:
            message = await transport.receive()
            if message.kind == 0:
                EVENTS.append({"path": "/echo", "closed": True, "data": message.data})
                return
            if message.kind == 1:
                await transport.send_bytes(message.data)
            else:
                await transport.send_str(message.data)
    if scope.path == "/scope":
        info = {
            "proto": scope.proto,
            "http_version": scope.http_version,
            "scheme": scope.scheme,
            "method": scope.method,
            "path": scope.path,
            "query_string": scope.query_string,
            "upgrade": scope.headers.get("upgrade"),
        }
        await transport.send_str(json.dumps(info))
        proto.close(4001)
        return
    if scope.path == "/raise-after":
        raise RuntimeError("boom after accept")
