"""The `--pid-file`: written at start, removed at exit."""

from __future__ import annotations

import contextlib
import os


def write(path: str) -> None:
    with open(path, "w") as f:
        f.write(f"{os.getpid()}\n")


def remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)
