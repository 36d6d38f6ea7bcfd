"""The smallest RSGI app: `diorite --interface rsgi examples.hello_rsgi:app`."""


async def app(scope, proto):
    proto.response_str(200, [("content-type", "text/plain")], "Hello, world!")
