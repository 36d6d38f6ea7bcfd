"""Entry point of a worker process the supervisor starts:
`python -m diorite.worker`, with its settings and descriptors in the
environment (see `supervisor.spawn`)."""

from __future__ import annotations

import ctypes
import faulthandler
import json
import os
import signal
import sys

from .config import Config
from .server import Inherited, run

CONFIG_ENV = "DIORITE_WORKER_CONFIG"
FD_ENV = "DIORITE_WORKER_FD"
READY_ENV = "DIORITE_WORKER_READY_FD"
METRICS_ENV = "DIORITE_WORKER_METRICS_FD"
#: The supervisor sends it to a worker whose event loop hangs
#: (--workers-loop-timeout), before killing it: every thread's stack goes
#: to stderr, which is the log.
STACK_SIGNAL = signal.SIGUSR1


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
    metrics_fd = os.environ.pop(METRICS_ENV, None)
    inherited = Inherited(
        fd=int(os.environ.pop(FD_ENV)),
        ready_fd=int(os.environ.pop(READY_ENV)),
        metrics_fd=int(metrics_fd) if metrics_fd is not None else None,
    )
    # In C, from the signal handler: works while the loop's thread is stuck
    # in Python or in a blocking call.
    faulthandler.register(STACK_SIGNAL, file=sys.stderr, all_threads=True)
    sys.exit(run(config, inherited))


if __name__ == "__main__":
    main()
