"""Diorite: an HTTP server for Python web applications with its core in Rust."""

from ._diorite import __version__

__all__ = ["__version__"]
