"""The `diorite` command: `diorite [OPTIONS] APP`.

Options use Granian's names so that a command line moves from one server to
the other by changing the program name. Every option can also come from
the environment as `DIORITE_<NAME>` (for example `DIORITE_PORT=9000`); a
flag given on the command line wins over the environment.
"""

from __future__ import annotations

import argparse
import os
import re
import sys

from . import __version__
from .config import HTTP_MODES, INTERFACES, LOOPS, Config
from .logs import LEVELS

ENV_PREFIX = "DIORITE_"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, naming the option, exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError
    return value


_positive.__name__ = "positive int"


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise ValueError
    return value


_port.__name__ = "port (0-65535)"


def _seconds(text: str) -> float:
    value = float(text)
    if value < 0:
        raise ValueError
    return value


_seconds.__name__ = "number of seconds"


def _octal(text: str) -> int:
    value = int(text.removeprefix("0o"), 8)
    if not 0 <= value <= 0o777:
        raise ValueError
    return value


_octal.__name__ = "octal mode (e.g. 660)"


def _bool_env(name: str, text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"{name}: expected true or false, got {text!r}")


def load_env_files(paths: list[str]) -> None:
    """Loads dotenv files into the environment (what is already set wins),
    before the app is imported; workers inherit the result."""
    if not paths:
        return
    from dotenv import load_dotenv

    for path in paths:
        load_dotenv(path, override=False)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="diorite",
        description="Serve a Python web application (ASGI, RSGI or WSGI) with a Rust core.",
        epilog="Every option can also be set as DIORITE_<OPTION>, e.g. DIORITE_PORT=9000.",
    )
    p.add_argument("app", metavar="APP", nargs="?", help="the application, as module:attribute")
    p.add_argument(
        "--interface",
        choices=INTERFACES,
        default="asgi",
        help="asgi, asginl (ASGI without lifespan), rsgi or wsgi (default: asgi)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=_port, default=8000, help="port to bind (default: 8000)")
    p.add_argument(
        "--http", choices=HTTP_MODES, default="auto", help="HTTP versions to serve (default: auto)"
    )
    p.add_argument(
        "--runtime-threads",
        type=_positive,
        default=1,
        help="tokio I/O threads per worker (default: 1)",
    )
    p.add_argument(
        "--blocking-threads",
        type=_positive,
        default=32,
        help="WSGI: threads the app runs on (default: 32)",
    )
    p.add_argument("--backlog", type=_positive, default=1024, help="listen backlog (default: 1024)")
    p.add_argument(
        "--backpressure",
        type=_positive,
        default=None,
        help="most requests handed to Python at once per worker (default: the backlog)",
    )
    p.add_argument(
        "--working-dir", default=None, help="directory to change to before loading the app"
    )
    p.add_argument(
        "--log-level", choices=tuple(LEVELS), default="info", help="log level (default: info)"
    )
    p.add_argument(
        "--log",
        dest="log_enabled",
        action="store_true",
        default=True,
        help="enable logging (default)",
    )
    p.add_argument("--no-log", dest="log_enabled", action="store_false", help="disable logging")
    p.add_argument(
        "--factory", action="store_true", default=False, help="APP is a factory to call for the app"
    )
    p.add_argument(
        "--loop",
        choices=LOOPS,
        default="auto",
        help="event loop (default: auto, uvloop if installed)",
    )
    p.add_argument(
        "--http1-keep-alive",
        dest="http1_keep_alive",
        action="store_true",
        default=True,
        help="keep HTTP/1.1 connections open between requests (default)",
    )
    p.add_argument("--no-http1-keep-alive", dest="http1_keep_alive", action="store_false")
    p.add_argument(
        "--http2-max-concurrent-streams",
        type=_positive,
        default=200,
        help="HTTP/2 streams per connection (default: 200)",
    )
    p.add_argument(
        "--ws",
        dest="websockets",
        action="store_true",
        default=True,
        help="serve websockets to ASGI and RSGI apps (default)",
    )
    p.add_argument(
        "--no-ws",
        dest="websockets",
        action="store_false",
        help="no websockets: upgrade requests reach the app as plain HTTP requests",
    )
    p.add_argument(
        "--ws-max-message-size",
        type=_positive,
        default=16 * 1024 * 1024,
        metavar="BYTES",
        help="largest websocket message a client may send; bigger ones close "
        "the connection with 1009 (default: 16777216, 16 MiB)",
    )
    p.add_argument(
        "--shutdown-timeout",
        type=_seconds,
        default=30.0,
        help="seconds in-flight requests get to finish on SIGINT/SIGTERM (default: 30)",
    )
    p.add_argument("--workers", type=_positive, default=1, help="worker processes (default: 1)")
    p.add_argument(
        "--respawn-failed-workers",
        action="store_true",
        default=False,
        help="replace workers that die unexpectedly",
    )
    p.add_argument(
        "--respawn-interval",
        type=_seconds,
        default=3.5,
        help="seconds to wait before replacing a failed worker (default: 3.5)",
    )
    p.add_argument(
        "--workers-lifetime",
        type=_seconds,
        default=None,
        help="replace each worker after this many seconds, one at a time",
    )
    p.add_argument(
        "--workers-max-rss",
        type=_positive,
        default=None,
        help="replace a worker whose memory (RSS) exceeds this many MiB",
    )
    p.add_argument(
        "--workers-kill-timeout",
        type=_seconds,
        default=30.0,
        help="seconds a stopping worker gets before SIGKILL (default: 30)",
    )
    p.add_argument("--pid-file", default=None, help="write the server's process id to this file")
    p.add_argument("--uds", default=None, help="listen on this Unix domain socket instead of TCP")
    p.add_argument(
        "--uds-permissions",
        type=_octal,
        default=None,
        help="permissions of the --uds socket file, in octal (e.g. 660)",
    )
    p.add_argument("--process-name", default=None, help="name the server's processes show")
    p.add_argument(
        "--env-files",
        action="append",
        default=[],
        metavar="FILE",
        help="load environment variables from this dotenv file before the app (repeatable)",
    )
    p.add_argument(
        "--reload",
        action="store_true",
        default=False,
        help="restart workers when files change (development; needs watchfiles)",
    )
    p.add_argument(
        "--reload-paths",
        action="append",
        default=[],
        metavar="PATH",
        help="a path --reload watches (repeatable; default: the working directory)",
    )
    p.add_argument(
        "--reload-ignore-patterns",
        action="append",
        default=[],
        metavar="REGEX",
        help="changed paths matching this regular expression do not trigger a reload (repeatable)",
    )
    p.add_argument("--version", action="version", version=f"diorite {__version__}")
    return p


def _apply_env(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """Prepends options found in DIORITE_* variables to argv, so that the
    parser checks them like flags and the command line still wins."""
    from_env: list[str] = []
    given = {arg.split("=", 1)[0] for arg in argv if arg.startswith("--")}
    for action in parser._actions:
        if not action.option_strings or action.dest in ("help", "version"):
            continue
        for option in action.option_strings:
            env = ENV_PREFIX + option.lstrip("-").replace("-", "_").upper()
            text = os.environ.get(env)
            if text is None or any(o in given for o in action.option_strings):
                continue
            if action.nargs == 0:
                try:
                    if _bool_env(env, text):
                        from_env.append(option)
                except ValueError as exc:
                    parser.error(str(exc))
            else:
                from_env.append(f"{option}={text}")
    return from_env + argv


def parse(argv: list[str] | None = None) -> Config:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(_apply_env(parser, argv))
    if not args.app:
        args.app = os.environ.get(ENV_PREFIX + "APP")
    if not args.app:
        parser.error("the APP argument is required (module:attribute), or set DIORITE_APP")
    if args.reload:
        try:
            import watchfiles  # noqa: F401
        except ImportError:
            parser.error("argument --reload: needs the watchfiles package (pip install watchfiles)")
    if args.env_files:
        try:
            import dotenv  # noqa: F401
        except ImportError:
            parser.error("argument --env-files: needs python-dotenv (pip install python-dotenv)")
        for path in args.env_files:
            if not os.path.isfile(path):
                parser.error(f"argument --env-files: no such file: {path}")
    for pattern in args.reload_ignore_patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            parser.error(
                f"argument --reload-ignore-patterns: invalid regular expression {pattern!r}: {exc}"
            )
    return Config(
        app=args.app,
        interface=args.interface,
        host=args.host,
        port=args.port,
        http=args.http,
        runtime_threads=args.runtime_threads,
        backlog=args.backlog,
        backpressure=args.backpressure,
        working_dir=args.working_dir,
        log_level=args.log_level,
        log_enabled=args.log_enabled,
        factory=args.factory,
        loop=args.loop,
        http1_keep_alive=args.http1_keep_alive,
        http2_max_concurrent_streams=args.http2_max_concurrent_streams,
        websockets=args.websockets,
        ws_max_message_size=args.ws_max_message_size,
        shutdown_timeout=args.shutdown_timeout,
        blocking_threads=args.blocking_threads,
        workers=args.workers,
        respawn_failed_workers=args.respawn_failed_workers,
        respawn_interval=args.respawn_interval,
        workers_lifetime=args.workers_lifetime,
        workers_max_rss=args.workers_max_rss,
        workers_kill_timeout=args.workers_kill_timeout,
        pid_file=args.pid_file,
        uds=args.uds,
        uds_permissions=args.uds_permissions,
        process_name=args.process_name,
        env_files=args.env_files,
        reload=args.reload,
        reload_paths=args.reload_paths,
        reload_ignore_patterns=args.reload_ignore_patterns,
    )


def main(argv: list[str] | None = None) -> None:
    config = parse(argv)
    load_env_files(config.env_files)
    if config.supervised:
        from .supervisor import run
    else:
        from .server import run

    sys.exit(run(config))
