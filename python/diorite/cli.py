"""The `diorite` command: `diorite [OPTIONS] APP`.

Options use Granian's names, with Uvicorn's and Gunicorn's common ones as
aliases, so that a command line moves over by changing the program name.
The options themselves are declared once, in `options.py`; this module
reads them from the command line, the environment (`DIORITE_<NAME>`) and a
config file (`[tool.diorite]` in pyproject.toml, or `--config FILE`), in
that order of precedence, and checks each value where it came from.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
from typing import Any

from . import __version__, logs, options, tls
from .options import ENV_PREFIX, GROUPS, OPTIONS, ConfigError

Config = options.Config


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, naming the option, exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


class _Formatter(argparse.HelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=34, width=100)


def load_env_files(paths: list[str]) -> None:
    """Loads dotenv files into the environment (what is already set wins),
    before the app is imported; workers inherit the result."""
    if not paths:
        return
    from dotenv import load_dotenv

    for path in paths:
        load_dotenv(path, override=False)


def _help(option: options.Option) -> str:
    default = option.default
    if option.kind == "flag":
        shown = "on" if default else "off"
    elif default is None or default == [] or default == "":
        shown = None
    elif isinstance(default, list):
        shown = ",".join(map(str, default))
    else:
        shown = default
    text = option.help
    if shown is not None and "default:" not in text:
        text += f" (default: {shown})"
    return f"{text} [env: {option.env}]".replace("%", "%%")


def build_parser() -> argparse.ArgumentParser:
    """The parser, from the options table. Values stay text here: they are
    converted and checked by the table, like those from elsewhere."""
    p = _Parser(
        prog="diorite",
        description="Serve a Python web application (ASGI, RSGI or WSGI) with a Rust core.",
        epilog="Every option can also be set in the environment (shown after each one) or "
        "in [tool.diorite] of pyproject.toml; the command line wins, then the environment.",
        allow_abbrev=False,
        formatter_class=_Formatter,
    )
    p.add_argument(
        "app",
        metavar="APP",
        nargs="?",
        help=f"the application, as module:attribute [env: {ENV_PREFIX}APP]",
    )
    groups = {name: p.add_argument_group(name) for name in GROUPS}
    for option in OPTIONS:
        group = groups[option.group]
        common = {"dest": option.name, "default": argparse.SUPPRESS, "help": _help(option)}
        if option.kind == "flag":
            group.add_argument(*option.flags, action=argparse.BooleanOptionalAction, **common)
            continue
        metavar = option.metavar
        if option.choices:
            metavar = "{" + ",".join(option.choices) + "}"
        action = "append" if option.kind == "list" else "store"
        group.add_argument(*option.flags, action=action, metavar=metavar, **common)
    config = p.add_argument_group("configuration")
    config.add_argument(
        "--config",
        metavar="FILE",
        help="read options from this TOML file (its [tool.diorite] table, or its top level) "
        "instead of ./pyproject.toml",
    )
    config.add_argument(
        "--print-config",
        action="store_true",
        help="print every setting with where it came from, and exit",
    )
    config.add_argument(
        "--check-config",
        action="store_true",
        help="check the settings and load the app, then exit 0 (or 1 with the error)",
    )
    p.add_argument("--version", action="version", version=f"diorite {__version__}")
    return p


def _unknown(parser: argparse.ArgumentParser, extra: list[str]) -> None:
    """Rejects what the parser did not know, naming the first unknown option
    (not the argument that happened to follow it) with a suggestion."""
    flags = [f for action in parser._actions for f in action.option_strings]
    for arg in extra:
        if arg.startswith("-") and arg != "-":
            name = arg.split("=", 1)[0]
            close = difflib.get_close_matches(name, flags, n=1, cutoff=0.75)
            hint = f" (did you mean {close[0]}?)" if close else ""
            parser.error(f"unrecognized option {name}{hint}")
    parser.error(f"unrecognized arguments: {' '.join(extra)} (only one APP is taken)")


def _read_toml(path: str) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib
    with open(path, "rb") as f:
        return tomllib.load(f)


def _config_file(explicit: str | None, working_dir: str | None) -> tuple[dict[str, Any], str]:
    """The config table and its path: `--config FILE`, else the
    `[tool.diorite]` table of pyproject.toml in the app's directory."""
    if explicit is not None:
        if not os.path.isfile(explicit):
            raise ConfigError(f"argument --config: no such file: {explicit}")
        try:
            data = _read_toml(explicit)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"argument --config: {explicit}: {exc}") from None
        table = data.get("tool", {}).get("diorite", data) if "tool" in data else data
        return table, explicit
    path = os.path.join(working_dir or ".", "pyproject.toml")
    if not os.path.isfile(path):
        return {}, path
    try:
        data = _read_toml(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return data.get("tool", {}).get("diorite", {}), path


def resolve(
    argv: list[str], environ: dict[str, str] | None = None
) -> tuple[Any, dict[str, str], argparse.Namespace]:
    """The settings from the command line, the environment and the config
    file, with the source of each, and the parsed command line."""
    environ = dict(os.environ if environ is None else environ)
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        _unknown(parser, extra)
    cli = {
        option.name: (getattr(args, option.name), options.where_cli(option))
        for option in OPTIONS
        if hasattr(args, option.name)
    }
    env = options.from_environment(environ)
    working_dir = (cli.get("working_dir") or env.get("working_dir") or (None,))[0]
    table, path = _config_file(args.config, working_dir)
    from_file, file_app = options.from_file(table, path)
    layers = [(f"file {path}", from_file), ("environment", env), ("command line", cli)]
    app = args.app or environ.get(ENV_PREFIX + "APP") or file_app
    config, sources = options.build(layers, app=app)
    return config, sources, args


def check(config: Any) -> None:
    """What a value alone cannot show: a missing APP, extras a setting
    needs, files that must exist."""
    if not config.app:
        raise ConfigError(
            f"the APP argument is required (module:attribute), or set {ENV_PREFIX}APP "
            "or app in [tool.diorite]"
        )
    if not isinstance(config.app, str):
        raise ConfigError(f"APP must be a string like 'module:attribute', got {config.app!r}")
    if config.reload:
        try:
            import watchfiles  # noqa: F401
        except ImportError:
            raise ConfigError(
                "--reload needs the watchfiles package (pip install 'diorite[reload]')"
            ) from None
    if config.env_files:
        try:
            import dotenv  # noqa: F401
        except ImportError:
            raise ConfigError(
                "--env-files needs python-dotenv (pip install 'diorite[dotenv]')"
            ) from None
        for path in config.env_files:
            if not os.path.isfile(path):
                raise ConfigError(f"--env-files: no such file: {path}")
    if config.metrics:
        from .metrics import MISSING, available

        if not available():
            raise ConfigError(MISSING)
    if config.uds_permissions is not None and config.uds is None:
        raise ConfigError("--uds-permissions needs --uds")
    if config.proxy_protocol and config.uds is not None:
        raise ConfigError("--proxy-protocol is read on TCP listeners only, not with --uds")
    tls.check(config)
    options.check_limits(config)
    options.static_files(config)
    failed = logs.configure_from(config)
    if failed:
        raise ConfigError(failed)


def parse(argv: list[str] | None = None) -> tuple[Any, dict[str, str], argparse.Namespace]:
    """The checked settings, their sources and the parsed command line;
    a bad setting exits with status 2 and one line saying why."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        config, sources, args = resolve(argv)
        check(config)
    except ConfigError as exc:
        build_parser().error(str(exc))
    return config, sources, args


def print_config(config: Any, sources: dict[str, str]) -> None:
    """The settings as TOML for [tool.diorite], each with its source."""
    print("[tool.diorite]")
    print(f"app = {json.dumps(config.app)}")
    for option in OPTIONS:
        value = getattr(config, option.name)
        key = option.flags[0].lstrip("-")
        line = f"# {key} unset" if value is None else f"{key} = {json.dumps(value)}"
        print(f"{line:<48} # {sources[option.name]}")


def check_app(config: Any) -> int:
    """Loads the app as a worker would and names its interface."""
    from .loader import AppLoadError, describe_interface, load_app, resolve_interface

    load_env_files(config.env_files)
    try:
        app = load_app(config.app, config.factory, config.working_dir)
        interface, how = resolve_interface(app, config.interface)
    except AppLoadError as exc:
        print(f"diorite: {exc}", file=sys.stderr)
        return 1
    print(f"diorite: config ok; {config.app} is a {describe_interface(interface)} app ({how})")
    return 0


def main(argv: list[str] | None = None) -> None:
    config, sources, args = parse(argv)
    if args.print_config:
        print_config(config, sources)
        sys.exit(0)
    if args.check_config:
        sys.exit(check_app(config))
    load_env_files(config.env_files)
    if config.supervised:
        from .supervisor import run
    else:
        from .server import run

    sys.exit(run(config))
