"""Every setting diorite has, declared once.

The table below is the only place an option's name, type, default, choices,
environment variable, help text and group are written. The command-line
parser (`cli.py`), the environment and config-file readers, the `Config`
dataclass and the checks of the Python API all come from it, so a value is
judged the same way wherever it came from, and an error names where it came
from (the flag, the variable, the config key or the keyword argument).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .logs import LEVELS, access_format

ENV_PREFIX = "DIORITE_"

INTERFACES = ("auto", "asgi", "asginl", "rsgi", "wsgi")
HTTP_MODES = ("auto", "1", "2")
LOOPS = ("auto", "asyncio", "uvloop")

#: The `--help` sections, in order.
GROUPS = (
    "application",
    "binding",
    "HTTP",
    "static files",
    "limits and timeouts",
    "TLS",
    "proxies",
    "websockets",
    "workers",
    "metrics and health",
    "reload",
    "logging",
    "access log",
    "process",
)


class ConfigError(ValueError):
    """A setting with a bad value; the message names where it came from."""


# Converters: each takes what a user may give (text from the command line,
# the environment or a file, or a typed value from TOML or Python) and
# returns the typed value, or raises ValueError saying what was expected.


def _text_of(value: Any) -> str:
    return value if isinstance(value, str) else repr(value)


def integer(low: int | None = None, high: int | None = None) -> Callable[[Any], int]:
    if high is not None:
        what = f"an integer from {low} to {high}"
    elif low == 1:
        what = "a positive integer"
    elif low is not None:
        what = f"an integer of at least {low}"
    else:
        what = "an integer"

    def convert(value: Any) -> int:
        if isinstance(value, bool):
            raise ValueError(f"expected {what}, got {value!r}")
        if isinstance(value, int):
            number = value
        else:
            try:
                number = int(str(value).strip())
            except ValueError:
                raise ValueError(f"expected {what}, got {_text_of(value)!r}") from None
        if (low is not None and number < low) or (high is not None and number > high):
            raise ValueError(f"expected {what}, got {number}")
        return number

    return convert


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


def duration(value: Any) -> float:
    """Seconds, as a number or as text like `30`, `1.5`, `30s`, `5m`, `1h30m`."""
    what = "a duration (seconds, or like 30s, 5m, 1h30m)"
    if isinstance(value, bool):
        raise ValueError(f"expected {what}, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = str(value).strip().lower()
        try:
            seconds = float(text)
        except ValueError:
            parts = _DURATION.findall(text)
            if not parts or "".join(n + u for n, u in parts) != text:
                raise ValueError(f"expected {what}, got {_text_of(value)!r}") from None
            seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"expected {what}, got {_text_of(value)!r}")
    return seconds


#: The longest `timer_duration`: far longer would overflow the clock of a timer.
YEAR = 365 * 86400.0


def timer_duration(value: Any) -> float:
    """A `duration` above zero and at most a year: a timer that fires every
    0 s would never stop."""
    seconds = duration(value)
    if not 0 < seconds <= YEAR:
        raise ValueError(
            f"expected a duration above zero and at most 365d, got {_text_of(value)!r}"
        )
    return seconds


def capped_duration(value: Any) -> float:
    """A `duration` of at most a year (zero allowed)."""
    seconds = duration(value)
    if seconds > YEAR:
        raise ValueError(f"expected a duration of at most 365d, got {_text_of(value)!r}")
    return seconds


def milliseconds(value: Any) -> float:
    """A `timer_duration` where a bare number is milliseconds, as in the
    Granian options that take one (`--http1-header-read-timeout 5000`);
    text with a unit (`30s`) means what it says."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timer_duration(value / 1000)
    try:
        number = float(str(value).strip())
    except ValueError:
        return timer_duration(value)
    return timer_duration(number / 1000)


_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
_SIZE = re.compile(r"(\d+)\s*([kmg]?)(?:i?b)?")


def byte_size(value: Any) -> int:
    """Bytes, as a number or as text like `512k`, `10m`, `1g` (nginx's
    suffixes; `10MiB` and `10MB` read the same, as powers of 1024)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    match = _SIZE.fullmatch(str(value).strip().lower())
    if match is None or isinstance(value, bool):
        raise ValueError(
            f"expected a size in bytes (like 1048576, 512k, 10m), got {_text_of(value)!r}"
        )
    return int(match.group(1)) * _SIZE_UNITS[match.group(2)]


def byte_size_from(low: int) -> Callable[[Any], int]:
    """A `byte_size` of at least `low` bytes."""

    def convert(value: Any) -> int:
        size = byte_size(value)
        if size < low:
            raise ValueError(f"expected a size of at least {low} bytes, got {_text_of(value)!r}")
        return size

    return convert


def timer_or_off(value: Any) -> float | None:
    """A `timer_duration`, or None (off) for `0`, `none` or None: Uvicorn
    turns its websocket pings off with None, which a command line cannot
    give."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "none"):
        return None
    seconds = duration(value)
    return None if seconds == 0 else timer_duration(seconds)


def boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {_text_of(value)!r}")


def choice(*values: str) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        text = str(value).strip() if isinstance(value, str | int) else None
        if text not in values:
            raise ValueError(
                f"invalid choice {_text_of(value)!r} (choose from {', '.join(values)})"
            )
        return text

    convert.choices = values  # type: ignore[attr-defined]
    return convert


def text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected a non-empty string, got {value!r}")
    return value


def octal_mode(value: Any) -> int:
    what = "an octal file mode such as 660"
    if isinstance(value, int) and not isinstance(value, bool):
        mode = value
    else:
        try:
            mode = int(str(value).strip().removeprefix("0o"), 8)
        except ValueError:
            raise ValueError(f"expected {what}, got {_text_of(value)!r}") from None
    if not 0 <= mode <= 0o777:
        raise ValueError(f"expected {what}, got {_text_of(value)!r}")
    return mode


def regex(value: Any) -> str:
    pattern = text(value)
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None
    return pattern


def url_route(value: Any) -> str:
    """A URL path prefix for static files: `/` and a path, matched as sent."""
    route = text(value).strip()
    if not route.startswith("/") or any(c.isspace() or c in "?#" for c in route):
        raise ValueError(f"expected a URL path starting with / (like /static), got {value!r}")
    return route


def file_name(value: Any) -> str:
    """A plain file name: no directory part, not `.` or `..`."""
    name = text(value).strip()
    if name in (".", "..") or any(c in name for c in "/\\\0"):
        raise ValueError(f"expected a file name (like index.html), got {value!r}")
    return name


def absolute_path(value: Any) -> str:
    """A path, made absolute (worker processes read it too)."""
    return os.path.abspath(text(value))


def trusted_addresses(value: Any) -> list[str]:
    """`--forwarded-allow-ips`: addresses and CIDR networks, comma-separated
    in text (Uvicorn's and Gunicorn's form) or a list, or `*` for all."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ValueError(f"expected addresses or networks separated by commas, got {value!r}")
    entries = []
    for item in items:
        entry = str(item).strip()
        if not entry:
            continue
        if entry != "*":
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f"expected IP addresses or networks (like 10.0.0.0/8) or *, got {entry!r}"
                ) from None
        entries.append(entry)
    return entries


def root_path(value: Any) -> str:
    """`--url-path-prefix`: empty, or a path starting with `/`; a trailing
    `/` is dropped (`/app/` is `/app`)."""
    if value is None:
        return ""
    path = str(value).strip()
    if path and (not path.startswith("/") or any(c.isspace() or c in "?#%" for c in path)):
        raise ValueError(f"expected a URL path starting with / (like /app), got {value!r}")
    return path.rstrip("/")


def whole_seconds(value: Any) -> int:
    """A `duration`, in whole seconds."""
    return int(duration(value))


def ip_address(value: Any) -> str:
    """An IPv4 or IPv6 address to bind (no host name: it is bound as given)."""
    import ipaddress

    try:
        return str(ipaddress.ip_address(str(value).strip().strip("[]")))
    except ValueError:
        raise ValueError(f"expected an IP address, got {_text_of(value)!r}") from None


def optional(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """`convert`, or None (from Python, TOML's absence, or the text `none`)."""

    def wrapped(value: Any) -> Any:
        if value is None or (isinstance(value, str) and value.strip().lower() == "none"):
            return None
        return convert(value)

    wrapped.choices = getattr(convert, "choices", None)  # type: ignore[attr-defined]
    return wrapped


@dataclass(frozen=True)
class Option:
    """One setting. `flags[0]` is its name on the command line (Granian's
    where Granian has it); the others are aliases (Uvicorn's, Gunicorn's)."""

    name: str
    flags: tuple[str, ...]
    convert: Callable[[Any], Any]
    default: Any
    help: str
    group: str
    #: "value", "flag" (a boolean with a `--no-` form), or "list"
    #: (repeatable on the command line, comma-separated in the environment).
    kind: str = "value"
    metavar: str | None = None

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.flags[0].lstrip("-").replace("-", "_").upper()

    @property
    def choices(self) -> tuple[str, ...] | None:
        return getattr(self.convert, "choices", None)

    def value(self, raw: Any) -> Any:
        """`raw` converted, or ValueError."""
        if self.kind == "flag":
            return boolean(raw)
        if self.kind == "list":
            items = raw.split(",") if isinstance(raw, str) else raw
            if not isinstance(items, list | tuple):
                raise ValueError(f"expected a list, got {raw!r}")
            return [self.convert(item.strip() if isinstance(item, str) else item) for item in items]
        return self.convert(raw)


_POSITIVE = integer(1)
#: An HTTP/2 flow-control window (RFC 9113, 6.9.1).
_WINDOW = integer(1, 2**31 - 1)
MIB = 1024 * 1024

OPTIONS: tuple[Option, ...] = (
    # application
    Option(
        "interface",
        ("--interface",),
        choice(*INTERFACES),
        "auto",
        "the app's interface: auto (found from the app object), asgi, asginl "
        "(ASGI without lifespan), rsgi or wsgi",
        "application",
    ),
    Option(
        "factory",
        ("--factory",),
        boolean,
        False,
        "APP is a factory to call for the app",
        "application",
        "flag",
    ),
    Option(
        "working_dir",
        ("--working-dir", "--chdir"),
        optional(text),
        None,
        "directory to change to (and put first on sys.path) before loading the app",
        "application",
        metavar="DIR",
    ),
    Option(
        "env_files",
        ("--env-files", "--env-file"),
        text,
        [],
        "load environment variables from this dotenv file before the app (repeatable)",
        "application",
        "list",
        "FILE",
    ),
    Option(
        "loop",
        ("--loop",),
        choice(*LOOPS),
        "auto",
        "event loop: auto takes uvloop when it is installed",
        "application",
    ),
    Option(
        "blocking_threads",
        ("--blocking-threads", "--threads"),
        _POSITIVE,
        32,
        "WSGI: threads the app runs on, per worker",
        "application",
        metavar="N",
    ),
    Option(
        "blocking_threads_idle_timeout",
        ("--blocking-threads-idle-timeout",),
        duration,
        30.0,
        "WSGI: how long a thread with nothing to do is kept; it starts again when needed "
        "(the first one stays)",
        "application",
        metavar="DURATION",
    ),
    # binding
    Option("host", ("--host",), text, "127.0.0.1", "address to bind", "binding"),
    Option("port", ("--port",), integer(0, 65535), 8000, "port to bind (0: a free one)", "binding"),
    Option(
        "bind",
        ("--bind", "-b"),
        optional(text),
        None,
        "Gunicorn's form of the address: HOST:PORT, [IPv6]:PORT or unix:PATH",
        "binding",
        metavar="ADDRESS",
    ),
    Option(
        "uds",
        ("--uds",),
        optional(text),
        None,
        "listen on this Unix domain socket instead of TCP",
        "binding",
        metavar="PATH",
    ),
    Option(
        "uds_permissions",
        ("--uds-permissions",),
        optional(octal_mode),
        None,
        "permissions of the --uds socket file, in octal (e.g. 660)",
        "binding",
        metavar="MODE",
    ),
    Option("backlog", ("--backlog",), _POSITIVE, 1024, "listen backlog", "binding", metavar="N"),
    # HTTP
    Option(
        "http",
        ("--http",),
        choice(*HTTP_MODES),
        "auto",
        "HTTP versions: auto (HTTP/1.1 and HTTP/2 on one port), 1 or 2",
        "HTTP",
    ),
    Option(
        "runtime_threads",
        ("--runtime-threads",),
        _POSITIVE,
        1,
        "tokio I/O threads per worker",
        "HTTP",
        metavar="N",
    ),
    Option(
        "backpressure",
        ("--backpressure",),
        optional(_POSITIVE),
        None,
        "most requests inside Python at once per worker; later ones wait in Rust "
        "(default: the backlog)",
        "HTTP",
        metavar="N",
    ),
    Option(
        "backpressure_timeout",
        ("--backpressure-timeout",),
        capped_duration,
        30.0,
        "how long a request may wait for a --backpressure place before it is answered 503 "
        "with Retry-After (0: at once, as Uvicorn's --limit-concurrency; default: 30s)",
        "HTTP",
        metavar="DURATION",
    ),
    Option(
        "limit_concurrency",
        ("--limit-concurrency",),
        optional(_POSITIVE),
        None,
        "Uvicorn's: answer 503 at once to a request beyond N inside Python "
        "(--backpressure N with --backpressure-timeout 0)",
        "HTTP",
        metavar="N",
    ),
    Option(
        "http1_keep_alive",
        ("--http1-keep-alive",),
        boolean,
        True,
        "keep HTTP/1.1 connections open between requests",
        "HTTP",
        "flag",
    ),
    Option(
        "http1_pipeline_flush",
        ("--http1-pipeline-flush",),
        boolean,
        False,
        "HTTP/1.1: while more pipelined requests are already read, hold responses back and "
        "write them together (experimental: a response also waits while only part of the next "
        "request has arrived, and idle connections keep hyper's buffers instead of being "
        "parked); off by default, as in hyper and Granian",
        "HTTP",
        "flag",
    ),
    Option(
        "http2_adaptive_window",
        ("--http2-adaptive-window",),
        boolean,
        False,
        "HTTP/2: size the flow-control windows by measuring the connection (BDP pings); "
        "on, the two window sizes below are not used; off by default, as in hyper and Granian",
        "HTTP",
        "flag",
    ),
    Option(
        "http2_initial_connection_window_size",
        ("--http2-initial-connection-window-size",),
        _WINDOW,
        MIB,
        "HTTP/2: bytes of request bodies a connection may receive ahead of the app, all "
        "streams together (default: 1 MiB, hyper's and Granian's)",
        "HTTP",
        metavar="BYTES",
    ),
    Option(
        "http2_initial_stream_window_size",
        ("--http2-initial-stream-window-size",),
        _WINDOW,
        MIB,
        "HTTP/2: bytes of a request body a stream may receive ahead of the app "
        "(SETTINGS_INITIAL_WINDOW_SIZE; default: 1 MiB, hyper's and Granian's)",
        "HTTP",
        metavar="BYTES",
    ),
    Option(
        "http2_keep_alive_interval",
        ("--http2-keep-alive-interval",),
        optional(milliseconds),
        None,
        "HTTP/2: send a PING when the connection has been quiet this long (a bare number is "
        "milliseconds, as in Granian; or like 20s; default: none, no pings, as in hyper and "
        "Granian)",
        "HTTP",
        metavar="MS",
    ),
    Option(
        "http2_keep_alive_timeout",
        ("--http2-keep-alive-timeout",),
        timer_duration,
        20.0,
        "HTTP/2: close the connection when a keep-alive PING is not answered within this "
        "(with --http2-keep-alive-interval only; default: 20s, hyper's and Granian's)",
        "HTTP",
        metavar="DURATION",
    ),
    Option(
        "http2_max_frame_size",
        ("--http2-max-frame-size",),
        integer(16384, 16777215),
        16384,
        "HTTP/2: largest frame payload the server accepts (SETTINGS_MAX_FRAME_SIZE; "
        "default: 16 KiB, the protocol's smallest, hyper's and Granian's)",
        "HTTP",
        metavar="BYTES",
    ),
    Option(
        "http2_max_send_buffer_size",
        ("--http2-max-send-buffer-size",),
        integer(1, 2**32 - 1),
        409600,
        "HTTP/2: most response bytes buffered per stream before the app waits for the client "
        "(default: 400 KiB, hyper's and Granian's)",
        "HTTP",
        metavar="BYTES",
    ),
    Option(
        "http2_max_concurrent_streams",
        ("--http2-max-concurrent-streams",),
        _POSITIVE,
        200,
        "streams per HTTP/2 connection",
        "HTTP",
        metavar="N",
    ),
    # static files
    Option(
        "static_path_route",
        ("--static-path-route",),
        url_route,
        [],
        "URL prefix served from the --static-path-mount given in the same position "
        "(repeatable; with one mount and no route: /static, as Granian)",
        "static files",
        "list",
        "ROUTE",
    ),
    Option(
        "static_path_mount",
        ("--static-path-mount",),
        text,
        [],
        "directory whose files are served, from Rust, under the matching --static-path-route "
        "(repeatable; must exist)",
        "static files",
        "list",
        "DIR",
    ),
    Option(
        "static_path_dir_to_file",
        ("--static-path-dir-to-file",),
        optional(file_name),
        None,
        "file served for a request naming a directory (like index.html); without it a "
        "directory is 404 (never a listing)",
        "static files",
        metavar="NAME",
    ),
    Option(
        "static_path_expires",
        ("--static-path-expires",),
        whole_seconds,
        86400,
        "Cache-Control max-age of static files (seconds, or like 1d; 0: no Cache-Control)",
        "static files",
        metavar="DURATION",
    ),
    # limits and timeouts
    Option(
        "http1_buffer_size",
        ("--http1-buffer-size",),
        byte_size_from(8192),
        64 * 1024,
        "HTTP/1: each connection's read buffer, so also the largest request head (request line "
        "and headers): a bigger one is answered 431 and the connection closed (default: 64 KiB; "
        "Granian's is 408 KiB)",
        "limits and timeouts",
        metavar="BYTES",
    ),
    Option(
        "limit_request_line",
        ("--limit-request-line",),
        integer(0),
        8190,
        "longest request line (method, target, version), else 414 and the connection closed; "
        "0: only --http1-buffer-size bounds it (default: 8190, nginx's 8 KiB buffer and "
        "Gunicorn's field limit)",
        "limits and timeouts",
        metavar="BYTES",
    ),
    Option(
        "limit_request_fields",
        ("--limit-request-fields",),
        integer(1),
        100,
        "most header fields in a request, else 431 (default: 100, as Gunicorn and hyper)",
        "limits and timeouts",
        metavar="N",
    ),
    Option(
        "limit_request_field_size",
        ("--limit-request-field-size",),
        integer(0),
        8190,
        "longest header field (`name: value`), else 431 and the connection closed; 0: only "
        "--http1-buffer-size bounds it (default: 8190, as Gunicorn; nginx's is 8 KiB)",
        "limits and timeouts",
        metavar="BYTES",
    ),
    Option(
        "http2_max_headers_size",
        ("--http2-max-headers-size",),
        byte_size_from(1),
        64 * 1024,
        "HTTP/2: largest header list a request may have once decoded "
        "(SETTINGS_MAX_HEADER_LIST_SIZE), also the bound on a header block spread over "
        "CONTINUATION frames (default: 64 KiB; Granian's is 16 MiB)",
        "limits and timeouts",
        metavar="BYTES",
    ),
    Option(
        "max_body_size",
        ("--max-body-size",),
        optional(byte_size),
        None,
        "largest request body (like 10m): 413 before the app is called when Content-Length "
        "says more, else when the body grows past it (the app sees a disconnect); default: "
        "none, as Granian, Uvicorn and Gunicorn (nginx's is 1m)",
        "limits and timeouts",
        metavar="SIZE",
    ),
    Option(
        "limit_connections",
        ("--limit-connections",),
        optional(_POSITIVE),
        None,
        "most connections open at once per worker: at the limit a new connection takes the "
        "place of the oldest idle one, and with none idle it is refused at accept (closed at "
        "once); default: none",
        "limits and timeouts",
        metavar="N",
    ),
    Option(
        "http1_header_read_timeout",
        ("--http1-header-read-timeout",),
        milliseconds,
        30.0,
        "HTTP/1: close a connection whose next request head has not fully arrived this long "
        "after the server began waiting for it (a bare number is milliseconds, as in Granian; "
        "or like 30s; default: 30s)",
        "limits and timeouts",
        metavar="MS",
    ),
    Option(
        "timeout_keep_alive",
        ("--timeout-keep-alive", "--keep-alive"),
        timer_duration,
        5.0,
        "close a connection that has no request in flight and has received nothing for this "
        "long (default: 5s, Uvicorn's)",
        "limits and timeouts",
        metavar="DURATION",
    ),
    Option(
        "body_read_timeout",
        ("--body-read-timeout",),
        timer_duration,
        60.0,
        "answer 408 (the app sees a disconnect) when a request body's next piece takes longer "
        "than this to arrive (default: 60s, nginx's client_body_timeout)",
        "limits and timeouts",
        metavar="DURATION",
    ),
    Option(
        "write_timeout",
        ("--write-timeout",),
        timer_duration,
        60.0,
        "close a connection whose client has taken no bytes of a response for this long (the "
        "app sees a disconnect; default: 60s, nginx's send_timeout)",
        "limits and timeouts",
        metavar="DURATION",
    ),
    # websockets
    # TLS
    Option(
        "ssl_certificate",
        ("--ssl-certificate", "--ssl-certfile", "--certfile"),
        optional(text),
        None,
        "serve HTTPS with this PEM certificate chain (server certificate first); needs "
        "--ssl-keyfile",
        "TLS",
        metavar="FILE",
    ),
    Option(
        "ssl_keyfile",
        ("--ssl-keyfile", "--keyfile"),
        optional(text),
        None,
        "the certificate's private key, PEM (PKCS#8, PKCS#1 or SEC1; PKCS#8 when encrypted)",
        "TLS",
        metavar="FILE",
    ),
    Option(
        "ssl_keyfile_password",
        ("--ssl-keyfile-password",),
        optional(text),
        None,
        "password of an encrypted --ssl-keyfile",
        "TLS",
        metavar="TEXT",
    ),
    Option(
        "ssl_protocol_min",
        ("--ssl-protocol-min",),
        choice("tls1.2", "tls1.3"),
        "tls1.2",
        "oldest TLS version a client may use (Granian's default is tls1.3)",
        "TLS",
    ),
    Option(
        "ssl_ca",
        ("--ssl-ca", "--ssl-ca-certs", "--ca-certs"),
        optional(text),
        None,
        "ask clients for a certificate and check it against these PEM CA certificates "
        "(mutual TLS; a client may still send none unless --ssl-client-verify)",
        "TLS",
        metavar="FILE",
    ),
    Option(
        "ssl_client_verify",
        ("--ssl-client-verify",),
        boolean,
        False,
        "refuse clients without a certificate signed by --ssl-ca, in the handshake",
        "TLS",
        "flag",
    ),
    Option(
        "ssl_crl",
        ("--ssl-crl",),
        text,
        [],
        "PEM certificate revocation list: client certificates it revokes are refused "
        "(repeatable; needs --ssl-ca)",
        "TLS",
        "list",
        "FILE",
    ),
    Option(
        "ssl_reload_interval",
        ("--ssl-reload-interval",),
        optional(timer_duration),
        None,
        "check the TLS files this often and, when one changed, use the new ones for new "
        "handshakes while open connections carry on (default: off; SIGHUP to a single "
        "process does it once)",
        "TLS",
        metavar="DURATION",
    ),
    Option(
        "websockets",
        ("--ws",),
        boolean,
        True,
        "websockets for ASGI and RSGI apps; off, upgrade requests reach the app as plain HTTP",
        "websockets",
        "flag",
    ),
    Option(
        "ws_max_message_size",
        ("--ws-max-message-size",),
        _POSITIVE,
        16 * MIB,
        "largest websocket message a client may send; a bigger one closes the connection with 1009",
        "websockets",
        metavar="BYTES",
    ),
    Option(
        "ws_ping_interval",
        ("--ws-ping-interval",),
        timer_or_off,
        20.0,
        "send a ping on each open websocket this often; 0 or none: no pings "
        "(default: 20s, Uvicorn's)",
        "websockets",
        metavar="DURATION",
    ),
    Option(
        "ws_ping_timeout",
        ("--ws-ping-timeout",),
        timer_or_off,
        20.0,
        "close a websocket with 1011 when a ping gets no pong within this; 0 or none: "
        "never (default: 20s, Uvicorn's)",
        "websockets",
        metavar="DURATION",
    ),
    # workers
    Option(
        "workers",
        ("--workers", "-w"),
        _POSITIVE,
        1,
        "worker processes",
        "workers",
        metavar="N",
    ),
    Option(
        "shutdown_timeout",
        ("--shutdown-timeout", "--graceful-timeout", "--timeout-graceful-shutdown"),
        duration,
        30.0,
        "how long in-flight requests get to finish on SIGINT/SIGTERM",
        "workers",
        metavar="DURATION",
    ),
    Option(
        "workers_kill_timeout",
        ("--workers-kill-timeout",),
        optional(duration),
        None,
        "how long a stopping worker gets before SIGKILL (default: --shutdown-timeout "
        "plus 5s for the lifespan shutdown)",
        "workers",
        metavar="DURATION",
    ),
    Option(
        "respawn_failed_workers",
        ("--respawn-failed-workers",),
        boolean,
        False,
        "replace workers that die unexpectedly",
        "workers",
        "flag",
    ),
    Option(
        "respawn_interval",
        ("--respawn-interval",),
        duration,
        3.5,
        "how long to wait before replacing a failed worker",
        "workers",
        metavar="DURATION",
    ),
    Option(
        "workers_lifetime",
        ("--workers-lifetime",),
        optional(duration),
        None,
        "replace each worker after this long, one at a time",
        "workers",
        metavar="DURATION",
    ),
    Option(
        "workers_max_rss",
        ("--workers-max-rss",),
        optional(_POSITIVE),
        None,
        "replace a worker whose memory (RSS) exceeds this many MiB",
        "workers",
        metavar="MIB",
    ),
    Option(
        "max_requests",
        ("--max-requests",),
        integer(0),
        0,
        "replace a worker once it has served this many requests, one at a time (0: never)",
        "workers",
        metavar="N",
    ),
    Option(
        "max_requests_jitter",
        ("--max-requests-jitter",),
        integer(0),
        0,
        "add a random 0 to N to each worker's --max-requests, so that workers "
        "started together are not replaced together",
        "workers",
        metavar="N",
    ),
    Option(
        "rss_sample_interval",
        ("--rss-sample-interval",),
        duration,
        0.5,
        "how often --workers-max-rss measures each worker",
        "workers",
        metavar="DURATION",
    ),
    Option(
        "rss_samples",
        ("--rss-samples",),
        _POSITIVE,
        1,
        "how many measurements in a row over --workers-max-rss replace a worker",
        "workers",
        metavar="N",
    ),
    # reload
    Option(
        "reload",
        ("--reload",),
        boolean,
        False,
        "restart workers when files change (development; needs the [reload] extra)",
        "reload",
        "flag",
    ),
    Option(
        "reload_paths",
        ("--reload-paths", "--reload-dir"),
        text,
        [],
        "a path --reload watches (repeatable; default: the working directory)",
        "reload",
        "list",
        "PATH",
    ),
    Option(
        "reload_ignore_dirs",
        ("--reload-ignore-dirs",),
        text,
        [],
        "a directory name whose changes do not trigger a reload, added to watchfiles' "
        "default ones such as .git and __pycache__ (repeatable)",
        "reload",
        "list",
        "NAME",
    ),
    Option(
        "reload_ignore_paths",
        ("--reload-ignore-paths",),
        text,
        [],
        "a path whose changes (below it, for a directory) do not trigger a reload (repeatable)",
        "reload",
        "list",
        "PATH",
    ),
    Option(
        "reload_tick",
        ("--reload-tick",),
        integer(1, 60000),
        50,
        "milliseconds the watcher waits for more changes before it reloads",
        "reload",
        metavar="MS",
    ),
    Option(
        "reload_ignore_patterns",
        ("--reload-ignore-patterns",),
        regex,
        [],
        "changed paths matching this regular expression do not trigger a reload (repeatable)",
        "reload",
        "list",
        "REGEX",
    ),
    # proxies
    Option(
        "proxy_headers",
        ("--proxy-headers",),
        boolean,
        True,
        "believe Forwarded and X-Forwarded-* (client, scheme, host, prefix) from the "
        "--forwarded-allow-ips peers",
        "proxies",
        "flag",
    ),
    Option(
        "forwarded_allow_ips",
        ("--forwarded-allow-ips",),
        trusted_addresses,
        ["127.0.0.1", "::1"],
        "the proxies believed: addresses and CIDR networks separated by commas, or * for "
        "all (Unix-socket peers always are)",
        "proxies",
        metavar="ADDRESSES",
    ),
    Option(
        "proxy_protocol",
        ("--proxy-protocol",),
        boolean,
        False,
        "every TCP connection starts with a PROXY protocol v1 or v2 preamble (HAProxy "
        "send-proxy, AWS NLB); only --forwarded-allow-ips peers may connect",
        "proxies",
        "flag",
    ),
    Option(
        "url_path_prefix",
        ("--url-path-prefix", "--root-path"),
        root_path,
        "",
        "the path the app is mounted at behind a proxy: ASGI root_path, WSGI SCRIPT_NAME",
        "proxies",
        metavar="PATH",
    ),
    # logging
    Option(
        "log_enabled",
        ("--log",),
        boolean,
        True,
        "diorite's logging",
        "logging",
        "flag",
    ),
    Option(
        "log_level",
        ("--log-level",),
        optional(choice(*LEVELS)),
        None,
        "level of the diorite logger (default: info, or what --log-config sets)",
        "logging",
    ),
    Option(
        "log_config",
        ("--log-config",),
        optional(absolute_path),
        None,
        "logging configuration file: a dictConfig in JSON (or YAML, with PyYAML), or an "
        ".ini/.conf file for logging.config.fileConfig; applied in every process",
        "logging",
        metavar="FILE",
    ),
    # access log
    Option(
        "access_log",
        ("--access-log",),
        boolean,
        False,
        "log every request through the diorite.access logger",
        "access log",
        "flag",
    ),
    Option(
        "access_log_fmt",
        ("--access-log-fmt",),
        optional(access_format),
        None,
        "access line format, with %(atom)s keys (default: Granian's; see docs/logging.md)",
        "access log",
        metavar="FORMAT",
    ),
    Option(
        "access_logfile",
        ("--access-logfile",),
        optional(text),
        None,
        "write access lines to this file ('-': stdout); turns the access log on",
        "access log",
        metavar="FILE",
    ),
    # process
    Option(
        "pid_file",
        ("--pid-file", "--pid"),
        optional(text),
        None,
        "write the server's process id to this file",
        "process",
        metavar="PATH",
    ),
    Option(
        "process_name",
        ("--process-name", "--name"),
        optional(text),
        None,
        "name the server's processes show (needs the [pname] extra)",
        "process",
        metavar="NAME",
    ),
    # metrics and health
    Option(
        "metrics",
        ("--metrics",),
        boolean,
        False,
        "serve Prometheus metrics (/metrics) and a liveness check (/health) on their own "
        "address (needs the [metrics] extra)",
        "metrics and health",
        "flag",
    ),
    Option(
        "metrics_address",
        ("--metrics-address",),
        ip_address,
        "127.0.0.1",
        "address the metrics and health endpoints listen on",
        "metrics and health",
        metavar="ADDRESS",
    ),
    Option(
        "metrics_port",
        ("--metrics-port",),
        integer(0, 65535),
        9090,
        "port of the metrics and health endpoints (0: a free one)",
        "metrics and health",
        metavar="PORT",
    ),
    Option(
        "workers_loop_timeout",
        ("--workers-loop-timeout",),
        optional(timer_duration),
        None,
        "replace a worker whose event loop has not run for this long, after logging its "
        "threads' stacks (default: off)",
        "metrics and health",
        metavar="DURATION",
    ),
)

BY_NAME: dict[str, Option] = {o.name: o for o in OPTIONS}


class _Derived:
    """What the settings imply, computed, never set."""

    @property
    def access_logging(self) -> bool:
        """Whether requests are logged (--access-log, or --access-logfile)."""
        return self.access_log or self.access_logfile is not None

    @property
    def supervised(self) -> bool:
        """Whether a supervisor process runs the workers."""
        return (
            self.workers > 1
            or self.respawn_failed_workers
            or self.workers_lifetime is not None
            or self.workers_max_rss is not None
            or self.max_requests > 0
            or self.workers_loop_timeout is not None
            or self.reload
        )

    @property
    def metrics_block(self) -> bool:
        """Whether workers count into a shared block: for --metrics, for the
        heartbeat --workers-loop-timeout watches, and for the request count
        --max-requests watches."""
        return self.metrics or self.workers_loop_timeout is not None or self.max_requests > 0

    @property
    def effective_backpressure(self) -> int:
        if self.limit_concurrency is not None:
            return self.limit_concurrency
        return self.backpressure if self.backpressure is not None else self.backlog

    @property
    def effective_backpressure_timeout(self) -> float:
        return 0.0 if self.limit_concurrency is not None else self.backpressure_timeout

    @property
    def effective_kill_timeout(self) -> float:
        """How long a stopping worker lives: by default the whole grace, and
        time for the lifespan shutdown after it."""
        if self.workers_kill_timeout is not None:
            return self.workers_kill_timeout
        return self.shutdown_timeout + 5.0


def check_limits(config: Any) -> None:
    """ConfigError for limits that contradict each other."""
    if config.limit_concurrency is not None and config.backpressure is not None:
        raise ConfigError(
            "--limit-concurrency N is --backpressure N with --backpressure-timeout 0: "
            "give one of --limit-concurrency and --backpressure"
        )


def static_files(config: Any) -> list[dict[str, Any]]:
    """The static routes as `Worker(static_files=...)` takes them: routes
    and mounts paired in order (one mount alone is served at `/static`),
    each mount an existing directory, made absolute. ConfigError otherwise."""
    routes, mounts = list(config.static_path_route), list(config.static_path_mount)
    if not routes and len(mounts) == 1:
        routes = ["/static"]
    if len(routes) != len(mounts):
        raise ConfigError(
            f"--static-path-route and --static-path-mount pair in order: got {len(routes)} "
            f"route(s) for {len(mounts)} mount(s)"
        )
    seen: set[str] = set()
    found = []
    for route, mount in zip(routes, mounts, strict=True):
        key = route.rstrip("/") or "/"
        if key in seen:
            raise ConfigError(f"--static-path-route: {route} is given twice")
        seen.add(key)
        if not os.path.isdir(mount):
            raise ConfigError(f"--static-path-mount: no such directory: {mount}")
        found.append(
            {
                "route": route,
                "mount": os.path.abspath(mount),
                "dir_to_file": config.static_path_dir_to_file,
                "expires": config.static_path_expires,
            }
        )
    return found


def _default(option: Option) -> Any:
    return list(option.default) if isinstance(option.default, list) else option.default


Config = dataclasses.make_dataclass(
    "Config",
    [("app", Any, field(default=None))]
    + [
        (o.name, Any, field(default_factory=lambda o=o: _default(o)))  # type: ignore[misc]
        for o in OPTIONS
    ],
    bases=(_Derived,),
)
Config.__module__ = __name__
Config.__doc__ = "The settings of one server, with every option of `OPTIONS` as a field."


def where_cli(option: Option) -> str:
    """How an error names a value from the command line."""
    return f"argument {'/'.join(option.flags)}"


def build(
    layers: list[tuple[str, Mapping[str, tuple[Any, str]]]], app: str | None = None
) -> tuple[Any, dict[str, str]]:
    """The Config from `layers`, lowest precedence first: each maps option
    names to (raw value, where it came from). Returns it with the source of
    each setting (`default`, or the layer's name)."""
    winners: dict[str, tuple[Any, str, str]] = {}
    for layer, given in layers:
        for name, (raw, where) in given.items():
            winners[name] = (raw, where, layer)
    # Only the value that wins is judged: a bad one that is overridden
    # (say in the environment, by a flag) does not stop the server.
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, (raw, where, layer) in winners.items():
        try:
            values[name] = BY_NAME[name].value(raw)
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        sources[name] = layer
    config = Config(app=app, **values)
    for option in OPTIONS:
        sources.setdefault(option.name, "default")
    _apply_bind(config, sources)
    return config, sources


def _apply_bind(config: Any, sources: dict[str, str]) -> None:
    """Splits Gunicorn's `--bind` into host and port, or the UDS path."""
    if config.bind is None:
        return
    address = config.bind
    where = f"{sources['bind']} bind"
    if address.startswith("unix:"):
        config.uds = address[5:]
        if not config.uds:
            raise ConfigError(f"{where}: expected unix:PATH, got {address!r}")
        sources["uds"] = sources["bind"]
        return
    host, sep, port = address.rpartition(":")
    if not sep:
        host, port = address, str(config.port)
    host = host.removeprefix("[").removesuffix("]")
    try:
        config.port = integer(0, 65535)(port)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if not host:
        raise ConfigError(f"{where}: expected HOST:PORT, got {address!r}")
    config.host = host
    sources["host"] = sources["port"] = sources["bind"]


def from_python(options: Mapping[str, Any]) -> dict[str, tuple[Any, str]]:
    """Keyword arguments of the Python API, checked like the others."""
    unknown = sorted(set(options) - set(BY_NAME))
    if unknown:
        import difflib

        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, BY_NAME, n=1)
            hints.append(f"{name} (did you mean {close[0]}?)" if close else name)
        raise ConfigError(f"unknown option(s): {', '.join(hints)}")
    return {name: (value, f"{name}=") for name, value in options.items()}


def from_environment(environ: Mapping[str, str]) -> dict[str, tuple[Any, str]]:
    """The settings `DIORITE_*` variables give (`DIORITE_NO_<FLAG>=1` is
    the `--no-` form of a flag)."""
    given: dict[str, tuple[Any, str]] = {}
    for option in OPTIONS:
        variable = option.env
        if variable in environ:
            given[option.name] = (environ[variable], f"{variable} (environment)")
        elif option.kind == "flag":
            negated = ENV_PREFIX + "NO_" + variable.removeprefix(ENV_PREFIX)
            if negated in environ:
                where = f"{negated} (environment)"
                try:
                    given[option.name] = (not boolean(environ[negated]), where)
                except ValueError as exc:
                    raise ConfigError(f"{where}: {exc}") from None
    return given


def from_file(table: Mapping[str, Any], path: str) -> tuple[dict[str, tuple[Any, str]], Any]:
    """The settings of a config table (`[tool.diorite]`), whose keys are the
    options' names (dashes or underscores), and its `app` if it has one."""
    by_key = {}
    for option in OPTIONS:
        for flag in option.flags:
            if flag.startswith("--"):
                key = flag[2:]
                by_key[key] = by_key[key.replace("-", "_")] = option
        by_key[option.name] = option
    given: dict[str, tuple[Any, str]] = {}
    app = None
    for key, value in table.items():
        if key == "app":
            app = value
            continue
        option = by_key.get(key)
        if option is None:
            import difflib

            close = difflib.get_close_matches(key, by_key, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(f"{path}: unknown option {key!r}{hint}")
        given[option.name] = (value, f"{key} in {path}")
    return given, app
