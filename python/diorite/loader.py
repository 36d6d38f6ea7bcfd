"""Finding the application object named on the command line."""

from __future__ import annotations

import importlib
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
