"""The Python half of the ASGI interface: the per-request runner and the
lifespan protocol. The request path itself (scope, receive, send) is Rust."""

from __future__ import annotations

import asyncio
import sys

from ._diorite import ClientDisconnected
from .logs import app_logger, logger

ASGI_VERSION = {"version": "3.0", "spec_version": "2.4"}
EXTENSIONS = ("http.response.pathsend", "http.response.trailers")
WEBSOCKET_EXTENSIONS = ("websocket.http.response",)


def scope_template(kind: str = "http", root_path: str = "", secure: bool = False) -> dict:
    """The keys every `http` (or `websocket`) scope shares; Rust copies
    this per request. `secure`: the server speaks TLS."""
    websocket = kind == "websocket"
    return {
        "type": kind,
        "asgi": dict(ASGI_VERSION),
        "scheme": ("wss" if secure else "ws") if websocket else ("https" if secure else "http"),
        "root_path": root_path,
        "extensions": {name: {} for name in (WEBSOCKET_EXTENSIONS if websocket else EXTENSIONS)},
    }


def _describe(scope) -> str:
    """`GET /path` for a request, `websocket /path` for a websocket."""
    return f"{scope.get('method', scope['type'])} {scope['path']}"


def _refused(status: int, scope, exc: BaseException) -> None:
    """The app failed on a request body the server refused (answering
    `status`): the client's doing, so a debug line, not an app error."""
    client = scope.get("client")
    app_logger.debug(
        "request body refused with %d (%s from %s); the app then raised",
        status,
        _describe(scope),
        f"{client[0]}:{client[1]}" if client else "unix socket",
        exc_info=exc,
    )


def make_runner(app):
    """Wraps the app so that whatever it does, the exchange is finished:
    a response it never sent becomes a 500, an exception is logged with
    its traceback, and the task itself never ends with an error."""

    async def run_http(scope, receive, send):
        try:
            await app(scope, receive, send)
        except ClientDisconnected:
            send.abort()
            app_logger.debug("client disconnected during %s", _describe(scope))
        except asyncio.CancelledError:
            send.abort()
        except BaseException as exc:
            # (A websocket has no request body to refuse.)
            refused = send.body_refusal() if scope["type"] == "http" else None
            if refused is None:
                app_logger.error("Exception in ASGI application", exc_info=exc)
            else:
                _refused(refused, scope, exc)
            send.abort()
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
        else:
            problem = send.finish()
            if problem:
                app_logger.error("%s (%s)", problem, _describe(scope))
                send.abort()

    return run_http


def task_spawner(loop: asyncio.AbstractEventLoop):
    """Returns `spawn(coro)`, which makes a request's task. From Python 3.12
    the task starts eagerly: a request whose app never waits is answered
    before the call returns, without a trip through the loop's ready queue.
    Every task gets the same name, which spares asyncio formatting a
    "Task-N" string per request."""
    task = asyncio.Task
    if sys.version_info >= (3, 12):

        def spawn(coro):
            return task(coro, loop=loop, name="diorite-request", eager_start=True)

    else:

        def spawn(coro):
            return task(coro, loop=loop, name="diorite-request")

    return spawn


# How long a stop during startup waits for the app's lifespan to end once
# cancelled; an app that ignores the cancellation is left behind.
ABANDON_TIMEOUT = 5.0


class Lifespan:
    """Runs the ASGI lifespan protocol for one worker."""

    def __init__(self, app):
        self.app = app
        self.state: dict = {}
        self.supported = True
        self._inbox: asyncio.Queue = asyncio.Queue()
        self._startup: asyncio.Future | None = None
        self._shutdown: asyncio.Future | None = None
        self._task: asyncio.Task | None = None

    async def startup(self) -> bool:
        """True when the app started (or does not speak lifespan)."""
        loop = asyncio.get_running_loop()
        self._startup = loop.create_future()
        self._shutdown = loop.create_future()
        self._task = loop.create_task(self._main(), name="lifespan")
        await self._inbox.put({"type": "lifespan.startup"})
        await asyncio.wait({self._startup, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if self._startup.done():
            ok, message = self._startup.result()
            if not ok:
                logger.error("Application startup failed: %s", message or "no reason given")
            return ok
        return not self.supported or self._task.exception() is None

    async def shutdown(self) -> bool:
        if not self.supported or self._task is None or self._task.done():
            return True
        await self._inbox.put({"type": "lifespan.shutdown"})
        await asyncio.wait({self._shutdown, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if self._shutdown.done():
            ok, message = self._shutdown.result()
            if not ok:
                logger.error("Application shutdown failed: %s", message or "no reason given")
            return ok
        return True

    async def abandon(self) -> None:
        """Cancels a startup the server stopped waiting for (a stop signal
        came first) and waits a little for the app to let go."""
        if self._task is None or self._task.done():
            return
        self._task.cancel()
        await asyncio.wait({self._task}, timeout=ABANDON_TIMEOUT)

    async def _main(self):
        scope = {"type": "lifespan", "asgi": dict(ASGI_VERSION), "state": self.state}
        try:
            await self.app(scope, self._receive, self._send)
        except asyncio.CancelledError:
            logger.debug("ASGI lifespan cancelled")
        except BaseException as exc:
            if self._startup is not None and not self._startup.done():
                self.supported = False
                logger.info(
                    "ASGI lifespan is not supported by the app (%s: %s); going on without it",
                    type(exc).__name__,
                    exc,
                )
            else:
                logger.error("Exception in ASGI lifespan", exc_info=exc)
        else:
            if self._startup is not None and not self._startup.done():
                # An app that ignores the lifespan scope (returns at once) is
                # the common case, and fine: said only at debug level.
                self.supported = False
                logger.debug("ASGI lifespan returned before startup completed; going on without it")

    async def _receive(self):
        return await self._inbox.get()

    async def _send(self, message):
        kind = message["type"]
        if kind == "lifespan.startup.complete":
            self._startup.set_result((True, None))
        elif kind == "lifespan.startup.failed":
            self._startup.set_result((False, message.get("message", "")))
        elif kind == "lifespan.shutdown.complete":
            self._shutdown.set_result((True, None))
        elif kind == "lifespan.shutdown.failed":
            self._shutdown.set_result((False, message.get("message", "")))
        else:
            raise ValueError(f"unexpected lifespan message type {kind!r}")
