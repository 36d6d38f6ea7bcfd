"""Diorite: an HTTP server for Python web applications with its core in Rust."""

from collections.abc import Coroutine as _Coroutine

from ._diorite import Done as _Done
from ._diorite import Failed as _Failed
from ._diorite import Ready as _Ready
from ._diorite import Waiting as _Waiting
from ._diorite import __version__
from .api import ConfigError, Server, serve

# What `receive()` and `send()` return behaves as a coroutine (send, throw,
# close), so apps may wrap it in a task as they would Uvicorn's coroutines:
# `create_task(receive())`, `run_coroutine_threadsafe(send(msg), loop)`.
for _awaitable in (_Done, _Failed, _Ready, _Waiting):
    _Coroutine.register(_awaitable)

__all__ = ["ConfigError", "Server", "__version__", "serve"]
