"""The Python half of the WSGI interface: the environ's constant keys. The
rest (environ, start_response, wsgi.input, the
response) is Rust, run on a bounded pool of threads."""

from __future__ import annotations

import sys

from ._diorite import FileWrapper


def environ_template(secure: bool = False, multiprocess: bool = False, root_path: str = "") -> dict:
    """The environ keys that are the same for every request; `secure`: the
    server speaks TLS; `root_path`: `--url-path-prefix`."""
    environ = {
        "SCRIPT_NAME": root_path,
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "https" if secure else "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": multiprocess,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
        "wsgi.file_wrapper": FileWrapper,
    }
    if secure:
        # The CGI variable Django, Flask and others also look at.
        environ["HTTPS"] = "on"
    return environ
