"""A Starlette app: routing, JSON, a streamed async generator, lifespan state."""

import asyncio
import contextlib

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

GENERATORS = {"started": 0, "closed": 0}
STATE: dict = {"ws_disconnects": []}


@contextlib.asynccontextmanager
async def lifespan(app):
    yield {"greeting": "hello from lifespan"}


async def home(request: Request):
    return PlainTextResponse(request.state.greeting)


async def item(request: Request):
    return JSONResponse({"id": int(request.path_params["id"]), "q": request.query_params.get("q")})


async def create(request: Request):
    data = await request.json()
    return JSONResponse({"received": data}, status_code=201)


async def form(request: Request):
    values = await request.form()
    return JSONResponse(dict(values))


async def stream(request: Request):
    async def numbers():
        GENERATORS["started"] += 1
        try:
            for i in range(int(request.query_params.get("n", 100))):
                yield f"{i}\n" * 100
                await asyncio.sleep(float(request.query_params.get("delay", 0)))
        finally:
            GENERATORS["closed"] += 1

    return StreamingResponse(numbers(), media_type="text/plain")


async def generators(request: Request):
    return JSONResponse(GENERATORS)


def sync_view(request: Request):
    return PlainTextResponse("sync view ran in a thread")


async def ws_json(websocket: WebSocket):
    """Echoes JSON with a counter; the lifespan state is visible here too."""
    await websocket.accept(subprotocol="json.v1")
    count = 0
    try:
        while True:
            data = await websocket.receive_json()
            count += 1
            await websocket.send_json({"echo": data, "count": count})
    except WebSocketDisconnect as exc:
        STATE["ws_disconnects"].append(exc.code)


async def ws_iter(websocket: WebSocket):
    """Streams text until the client says stop, then closes with 4001."""
    await websocket.accept()
    async for text in websocket.iter_text():
        if text == "stop":
            await websocket.close(code=4001, reason="stopped")
            return
        await websocket.send_text(text.upper())


async def ws_stats(request: Request):
    return JSONResponse({"ws_disconnects": STATE["ws_disconnects"]})


app = Starlette(
    routes=[
        WebSocketRoute("/ws/json", ws_json),
        WebSocketRoute("/ws/iter", ws_iter),
        Route("/ws/stats", ws_stats),
        Route("/", home),
        Route("/items/{id:int}", item),
        Route("/create", create, methods=["POST"]),
        Route("/form", form, methods=["POST"]),
        Route("/stream", stream),
        Route("/generators", generators),
        Route("/sync", sync_view),
    ],
    lifespan=lifespan,
)
