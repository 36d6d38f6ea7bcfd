"""Logging set-up shared by the CLI, the supervisor and the workers.

Three loggers: `diorite` (the server), `diorite.app` (errors raised by the
app, through `diorite`'s handlers) and `diorite.access` (one line per
request with `--access-log`). `configure` applies the default dictConfig,
then the `--log-config` file, then `--log-level`, `--no-log` and
`--access-logfile` on top (docs/logging.md)."""

from __future__ import annotations

import json
import logging
import logging.config
import os
import re
import sys
from typing import Any

LEVELS = {
    "critical": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "notset": logging.NOTSET,
}

FORMAT = "[%(asctime)s] [%(process)d] %(levelname)s %(name)s: %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"

#: Granian's default access line.
ACCESS_FORMAT = '[%(time)s] %(addr)s - "%(method)s %(path)s %(protocol)s" %(status)d %(dt_ms).3f'

#: The atoms of an access line, with values of their type for checking a
#: format (the Rust side fills the same keys: src/log/access.rs).
ATOMS: dict[str, Any] = {
    "addr": "127.0.0.1",
    "time": "2025-01-01 00:00:00 +0000",
    "dt_ms": 1.0,
    "status": 200,
    "path": "/",
    "query_string": "",
    "method": "GET",
    "scheme": "http",
    "protocol": "HTTP/1.1",
    "rbl": 0,
    "size": 0,
}

#: Most access records waiting for the event loop before new ones are dropped.
ACCESS_QUEUE = 65536

_KEY = re.compile(r"%\(([^)]*)\)")
_GRANIAN_HEADER = re.compile(r"header\{([^{}]+)\}")
_GUNICORN_HEADER = re.compile(r"\{([^{}]+)\}i")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")

logger = logging.getLogger("diorite")
app_logger = logging.getLogger("diorite.app")
access_logger = logging.getLogger("diorite.access")


class _BatchFlush:
    """For a StreamHandler: writes without flushing; the access log flushes
    every handler of `diorite.access` once per batch of records, so a busy
    server makes one write per batch instead of one per request."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.stream.write(self.format(record) + self.terminator)  # type: ignore[attr-defined]
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)  # type: ignore[attr-defined]

    def write_lines(self, text: str) -> None:
        """Writes lines the access log rendered itself (see
        `plain_access_handler`), and flushes."""
        self.acquire()  # type: ignore[attr-defined]
        try:
            self.stream.write(text)  # type: ignore[attr-defined]
            self.flush()  # type: ignore[attr-defined]
        except Exception:
            self.handleError(None)  # type: ignore[attr-defined]
        finally:
            self.release()  # type: ignore[attr-defined]


class AccessHandler(_BatchFlush, logging.StreamHandler):
    """The access log's default handler: standard output, flushed per batch."""


class AccessFileHandler(_BatchFlush, logging.FileHandler):
    """`--access-logfile PATH`: the file, flushed per batch."""


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and the
    traceback, if any); an access line also carries its atoms as fields.
    Standard library only; use it as `"()": "diorite.logs.JsonFormatter"`
    in a --log-config dictConfig."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, self.datefmt),
            "level": record.levelname,
            "logger": record.name,
            "process": record.process,
            "message": record.getMessage(),
        }
        if record.name == "diorite.access" and isinstance(record.args, dict):
            entry.update(record.args)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def access_headers(fmt: str) -> list[str]:
    """The request headers an access format names (lower case), as
    `%(header{name})s` (Granian) or `%({name}i)s` (Gunicorn); any other key
    that is no atom is refused."""
    found: list[str] = []
    for key in _KEY.findall(fmt):
        if key in ATOMS:
            continue
        named = _GRANIAN_HEADER.fullmatch(key) or _GUNICORN_HEADER.fullmatch(key)
        if not named or not _TOKEN.fullmatch(named.group(1).strip()):
            raise ValueError(
                f"{key!r} is no atom (atoms: {', '.join(ATOMS)}; request headers: "
                "header{name} or {name}i)"
            )
        name = named.group(1).strip().lower()
        if name not in found:
            found.append(name)
    return found


_SPEC = re.compile(
    r"%(?:\((?P<key>[^)]*)\))?(?P<flags>[#0\- +]*)(?P<width>\*|\d+)?"
    r"(?:\.(?P<prec>\*|\d+))?[hlL]?(?P<conv>[diouxXeEfFgGcrsa%])"
)


def access_parts(fmt: str) -> list[tuple[str, str, str, int]] | None:
    """`fmt` split for the Rust side to render: (text before, key,
    conversion, precision or -1), the last with an empty key; None when a
    conversion is beyond `%(key)s`, `%(key)d` and `%(key).Nf`."""
    parts: list[tuple[str, str, str, int]] = []
    text, pos = "", 0
    for spec in _SPEC.finditer(fmt):
        text += fmt[pos : spec.start()]
        pos = spec.end()
        key, conv, prec = spec["key"], spec["conv"], spec["prec"]
        if conv == "%" and key is None and not spec["flags"] and not spec["width"]:
            text += "%"
            continue
        if key is None or spec["flags"] or spec["width"] or conv not in "sdif" or prec == "*":
            return None
        if prec is not None and conv != "f":
            return None
        if key not in ATOMS:
            named = _GRANIAN_HEADER.fullmatch(key) or _GUNICORN_HEADER.fullmatch(key)
            if named is None:
                return None
            key = "header{" + named.group(1).strip().lower() + "}"
        parts.append((text, key, conv, int(prec) if prec is not None else -1))
        text = ""
    parts.append((text + fmt[pos:], "", "", -1))
    return parts


def plain_access_handler() -> logging.Handler | None:
    """The handler of `diorite.access` when an access line may be written
    as rendered: the default handler (or --access-logfile's) alone, with
    a formatter that writes the message only and no filters. Otherwise
    None, and each line goes through `logging` as a record."""
    log = access_logger
    if log.filters or log.propagate or len(log.handlers) != 1:
        return None
    handler = log.handlers[0]
    if type(handler) not in (AccessHandler, AccessFileHandler) or handler.filters:
        return None
    if handler.level > logging.INFO:
        return None
    formatter = handler.formatter
    if formatter is not None and (
        type(formatter) is not logging.Formatter
        or type(formatter._style) is not logging.PercentStyle
        or formatter._fmt != "%(message)s"
    ):
        return None
    return handler


def access_format(value: Any) -> str:
    """An access line format, checked by formatting sample atoms."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected a non-empty format, got {value!r}")
    sample = dict(ATOMS)
    for name in access_headers(value):
        sample["header{" + name + "}"] = sample["{" + name + "}i"] = "-"
    try:
        value % sample
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"bad format {value!r}: {exc}") from None
    return value


def default_config() -> dict[str, Any]:
    """What diorite logs through when no --log-config says otherwise."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "default": {"format": FORMAT, "datefmt": DATE_FORMAT},
            "access": {"format": "%(message)s"},
        },
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "stream": "ext://sys.stderr",
            },
            "access": {
                "class": "diorite.logs.AccessHandler",
                "formatter": "access",
                "stream": "ext://sys.stdout",
            },
        },
        "loggers": {
            "diorite": {"handlers": ["default"], "level": "INFO", "propagate": False},
            "diorite.app": {"propagate": True},
            "diorite.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
        },
    }


def load_config(path: str) -> dict[str, Any] | None:
    """The dictConfig in `path` (JSON or YAML); None for an `.ini`/`.conf`
    file, which `logging.config.fileConfig` reads. ValueError says why a
    file cannot be used."""
    ext = os.path.splitext(path)[1].lower()
    if ext in (".ini", ".conf", ".cfg"):
        if not os.path.isfile(path):
            raise ValueError(f"no such file: {path}")
        return None
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    if ext in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ValueError(f"{path}: YAML needs PyYAML (pip install pyyaml)") from None
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: invalid YAML: {exc}".replace("\n", " ")) from None
    else:
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: invalid JSON: {exc}") from None
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: expected a dictConfig mapping")
    return loaded


def apply_config(path: str) -> None:
    """Applies the --log-config file on top of the default; ValueError if it
    cannot be read or applied."""
    loaded = load_config(path)
    try:
        if loaded is None:
            logging.config.fileConfig(path, disable_existing_loggers=False)
        else:
            loaded.setdefault("version", 1)
            # Off unless asked: diorite's own loggers were configured first.
            loaded.setdefault("disable_existing_loggers", False)
            logging.config.dictConfig(loaded)
    except Exception as exc:  # logging.config raises many kinds
        cause = exc.__cause__
        why = f"{exc}: {cause}" if cause is not None else str(exc)
        raise ValueError(f"{path}: {why}".replace("\n", " ")) from None


def configure(
    level: str | None,
    enabled: bool,
    log_config: str | None = None,
    access_logfile: str | None = None,
) -> None:
    """Sets up diorite's loggers: defaults, then the `log_config` file, then
    `level` (when given), `enabled` and `access_logfile` on top. Raises
    ValueError for a log config that cannot be used."""
    logging.config.dictConfig(default_config())
    if log_config:
        apply_config(log_config)
    if level is not None or not log_config:
        logger.setLevel(LEVELS[level or "info"])
    if not enabled:
        for silenced in (logger, app_logger):
            silenced.setLevel(logging.CRITICAL + 1)
    if access_logfile:
        handler: logging.Handler
        if access_logfile == "-":
            handler = AccessHandler(sys.stdout)
        else:
            handler = AccessFileHandler(access_logfile, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(message)s"))
        for old in list(access_logger.handlers):
            access_logger.removeHandler(old)
            old.close()
        access_logger.addHandler(handler)
        access_logger.propagate = False
        if access_logger.level == logging.NOTSET or access_logger.level > logging.INFO:
            access_logger.setLevel(logging.INFO)


def configure_from(config: Any) -> str | None:
    """`configure` with a Config's settings; returns None, or the one line
    saying which setting could not be applied."""
    try:
        configure(
            config.log_level,
            config.log_enabled,
            log_config=config.log_config,
            access_logfile=config.access_logfile,
        )
    except ValueError as exc:
        return f"--log-config: {exc}"
    except OSError as exc:
        return f"--access-logfile: cannot open {config.access_logfile}: {exc.strerror or exc}"
    return None


def access_settings(config: Any) -> dict[str, Any] | None:
    """`Worker(access_log=...)`: None when requests are not logged."""
    if not config.access_logging:
        return None
    fmt = config.access_log_fmt or ACCESS_FORMAT
    return {
        "format": fmt,
        "headers": access_headers(fmt),
        "parts": access_parts(fmt),
        "queue": ACCESS_QUEUE,
    }
