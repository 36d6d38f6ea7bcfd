"""Finding the application object named on the command line."""

from __future__ import annotations

import functools
import importlib
import inspect
import os
import sys
import traceback


class AppLoadError(Exception):
    """The app could not be imported; the message is meant for the user."""


def load_app(target: str, factory: bool = False, working_dir: str | None = None):
    """Import `module:attr` (or `module:attr()` / `--factory`) and return the app."""
    if working_dir:
        os.chdir(working_dir)
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise AppLoadError(f"APP must look like 'module:attribute', got {target!r}")
    if attr.endswith("()"):
        attr, factory = attr[:-2], True
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise AppLoadError(f"cannot import module {module_name!r}: {exc}") from None
        raise AppLoadError(_traceback(f"importing {module_name!r} failed")) from None
    except BaseException:
        raise AppLoadError(_traceback(f"importing {module_name!r} failed")) from None
    obj = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AppLoadError(f"module {module_name!r} has no attribute {attr!r}") from None
    if factory:
        try:
            obj = obj()
        except BaseException:
            raise AppLoadError(_traceback(f"calling the factory {target!r} failed")) from None
    if not callable(obj) and not hasattr(obj, "__rsgi__"):
        raise AppLoadError(f"{target!r} is not callable (got {type(obj).__name__})")
    return obj


def _traceback(headline: str) -> str:
    return headline + ":\n" + traceback.format_exc().rstrip()


_NAMES = {"asgi": "ASGI", "asginl": "ASGI", "rsgi": "RSGI", "wsgi": "WSGI"}


def detect_interface(app) -> str:
    """The interface `app` speaks, from its shape: an object with
    `__rsgi__` is RSGI; an async callable taking (scope, receive, send) is
    ASGI and one taking (scope, protocol) RSGI; a plain callable taking
    (environ, start_response) is WSGI. Classes' `__call__` and
    `functools.partial` count as well."""
    if hasattr(app, "__rsgi__"):
        return "rsgi"
    if inspect.isroutine(app) or isinstance(app, functools.partial) or not callable(app):
        call = app
    else:
        call = app.__call__  # an instance of a class with __call__
    is_async = inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(
        getattr(call, "func", None)
    )
    try:
        params = [
            p
            for p in inspect.signature(call).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
        ]
        arity = len(params)
        variadic = any(
            p.kind is p.VAR_POSITIONAL for p in inspect.signature(call).parameters.values()
        )
    except (TypeError, ValueError):
        arity, variadic = -1, True
    if is_async:
        return "rsgi" if arity == 2 else "asgi"
    if arity == 2:
        return "wsgi"
    if arity == 3:
        # A plain callable taking three arguments returns the coroutine
        # itself (ASGI middleware written as a class often does).
        return "asgi"
    kind = type(app).__name__
    raise AppLoadError(
        f"cannot tell which interface the app ({kind}) speaks: it is not async and "
        f"does not take (environ, start_response){' (it takes *args)' if variadic else ''}; "
        "give --interface asgi, rsgi or wsgi"
    )


def resolve_interface(app, interface: str) -> tuple[str, str]:
    """The interface to serve `app` with, and how it was chosen (for the
    start-up line): `interface` itself, or the one `auto` finds."""
    if interface == "auto":
        return detect_interface(app), "found from the app"
    return interface, "given"


def describe_interface(interface: str) -> str:
    return _NAMES.get(interface, interface)
