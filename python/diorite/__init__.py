"""Diorite: an HTTP server for Python web applications with its core in Rust."""

from ._diorite import __version__
from .api import Server, serve

__all__ = ["Server", "__version__", "serve"]
