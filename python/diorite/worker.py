"""Entry point of a worker process the supervisor starts:
`python -m diorite.worker`, with its settings and descriptors in the
environment (see `supervisor.spawn`)."""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys

from .config import Config
from .server import Inherited, run

CONFIG_ENV = "DIORITE_WORKER_CONFIG"
FD_ENV = "DIORITE_WORKER_FD"
READY_ENV = "DIORITE_WORKER_READY_FD"


def _die_with_parent() -> None:
    """Linux: get SIGTERM if the supervisor dies, so no worker outlives it."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def main() -> None:
    _die_with_parent()
    config = Config(**json.loads(os.environ.pop(CONFIG_ENV)))
    inherited = Inherited(fd=int(os.environ.pop(FD_ENV)), ready_fd=int(os.environ.pop(READY_ENV)))
    sys.exit(run(config, inherited))


if __name__ == "__main__":
    main()
