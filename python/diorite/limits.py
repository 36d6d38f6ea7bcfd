"""The process's open-files limit, raised as far as it may go.

Every connection is a file descriptor, and the usual soft limit (1024 on
many Linux systems) is far below what one worker can serve; the hard limit
is what an administrator meant to allow. Each serving process raises its
own soft limit, as nginx's `worker_rlimit_nofile` does for its workers.
"""

from __future__ import annotations

import sys

from .logs import logger

#: Where the kernel's ceiling for RLIMIT_NOFILE is, when the hard limit is
#: "unlimited": Linux refuses a soft limit above it.
NR_OPEN = "/proc/sys/fs/nr_open"
#: macOS's ceiling (OPEN_MAX) for an "unlimited" hard limit.
DARWIN_OPEN_MAX = 10240


def raise_open_files_limit() -> None:
    """Raises the soft RLIMIT_NOFILE to the hard limit and logs the result
    once. A failure is a warning: the server runs with the limit it has."""
    try:
        import resource
    except ImportError:  # not a Unix: there is no such limit to raise
        return
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        target = _ceiling(hard, resource.RLIM_INFINITY)
        if soft != resource.RLIM_INFINITY and soft < target:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            logger.info("open files limit: %s -> %s", soft, target)
        else:
            logger.info("open files limit: %s", _shown(soft, resource.RLIM_INFINITY))
    except (OSError, ValueError) as exc:
        logger.warning("could not raise the open files limit: %s", exc)


def _ceiling(hard: int, infinity: int) -> int:
    if hard != infinity:
        return hard
    if sys.platform == "darwin":
        return DARWIN_OPEN_MAX
    try:
        with open(NR_OPEN) as f:
            return int(f.read())
    except (OSError, ValueError):
        return 1024 * 1024  # Linux's default nr_open


def _shown(limit: int, infinity: int) -> str:
    return "unlimited" if limit == infinity else str(limit)
