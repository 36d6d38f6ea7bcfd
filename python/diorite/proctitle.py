"""`--process-name`: what `ps` shows for the server's processes."""

from __future__ import annotations

import ctypes


def set_title(title: str) -> None:
    """Uses setproctitle when installed (the whole command line changes);
    otherwise sets the kernel's process name (`ps -o comm`, 15 bytes)."""
    try:
        from setproctitle import setproctitle
    except ImportError:
        pass
    else:
        setproctitle(title)
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_name = 15
        libc.prctl(pr_set_name, title.encode()[:15], 0, 0, 0)
    except (OSError, AttributeError):
        pass
