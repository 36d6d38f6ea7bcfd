"""The benchmark's RSGI app: one route per scenario."""

from .asgi_app import CHUNK, FOUR_MIB, JSON, ONE_MIB


async def app(scope, proto):
    if scope.proto == "ws":
        return await echo(proto)
    path = scope.path
    if path == "/echo":
        body = await proto()
        return proto.response_bytes(200, [("content-type", "application/octet-stream")], body)
    if path == "/stream":
        transport = proto.response_stream(200, [("content-type", "text/plain")])
        for _ in range(100):
            await transport.send_bytes(CHUNK)
        return
    body, kind = {
        "/json": (JSON, "application/json"),
        "/1m": (ONE_MIB, "application/octet-stream"),
        "/4m": (FOUR_MIB, "application/octet-stream"),
    }.get(path, (b"Hello, world!", "text/plain"))
    proto.response_bytes(200, [("content-type", kind)], body)


async def echo(proto):
    """Websocket echo: every message goes back as it came."""
    transport = await proto.accept()
    while True:
        message = await transport.receive()
        if message.kind == 0:
            return
        if message.kind == 1:
            await transport.send_bytes(message.data)
        else:
            await transport.send_str(message.data)
