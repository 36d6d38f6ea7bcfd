"""The smallest RSGI app: `diorite examples.hello_rsgi:app` (found to be RSGI)."""


async def app(scope, proto):
    proto.response_str(200, [("content-type", "text/plain")], "Hello, world!")
