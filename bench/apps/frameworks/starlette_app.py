"""Starlette: a StreamingResponse of 100 chunks of 1 KiB."""

from starlette.applications import Starlette
from starlette.responses import StreamingResponse
from starlette.routing import Route

CHUNKS = 100
CHUNK = b"s" * 1023 + b"\n"


async def chunks():
    for _ in range(CHUNKS):
        yield CHUNK


async def stream(request):
    return StreamingResponse(chunks(), media_type="text/plain")


app = Starlette(routes=[Route("/stream", stream)])
