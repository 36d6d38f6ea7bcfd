"""The Python half of the RSGI interface: the per-request runner and the
app's lifecycle hooks. Scope and protocol objects are Rust."""

from __future__ import annotations

import asyncio

from ._diorite import RSGI_VERSION, ClientDisconnected
from .logs import app_logger

__all__ = ["RSGI_VERSION", "call_hook", "entry_point", "make_runner"]


def entry_point(app):
    """An object with `__rsgi__` is served through that method."""
    return getattr(app, "__rsgi__", app)


def call_hook(app, name: str, loop: asyncio.AbstractEventLoop) -> None:
    """Calls `__rsgi_init__(loop)` or `__rsgi_del__(loop)` when the app has it."""
    hook = getattr(app, name, None)
    if hook is not None:
        hook(loop)


def make_runner(app):
    """Wraps the app so every request ends with a response: one the app
    never sent becomes a 500, and exceptions are logged with tracebacks."""
    handler = entry_point(app)

    async def run_rsgi(scope, protocol):
        try:
            await handler(scope, protocol)
        except ClientDisconnected:
            protocol._finish(True)
            app_logger.debug("client disconnected during %s %s", scope.method, scope.path)
        except asyncio.CancelledError:
            protocol._finish(True)
        except BaseException as exc:
            # (A websocket has no request body to refuse.)
            refused = protocol._body_refusal() if scope.proto == "http" else None
            if refused is None:
                app_logger.error("Exception in RSGI application", exc_info=exc)
            else:
                app_logger.debug(
                    "request body refused with %d (%s %s from %s); the app then raised",
                    refused,
                    scope.method,
                    scope.path,
                    scope.client,
                    exc_info=exc,
                )
            protocol._finish(True)
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
        else:
            if protocol._finish(False):
                app_logger.error(
                    "RSGI application returned without a response (%s %s)", scope.method, scope.path
                )

    return run_rsgi
