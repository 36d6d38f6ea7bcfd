"""TLS settings between the options and the Rust side: the check at
start-up that names the option to fix, and the certificate reload (SIGHUP
in a single process, or `--ssl-reload-interval` in every worker) that
swaps the certificate in place while open connections carry on."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

from .logs import logger
from .options import ConfigError

#: The option each setting `_diorite.TlsSettingError` names comes from.
OPTIONS = {
    "certificate": "--ssl-certificate",
    "keyfile": "--ssl-keyfile",
    "keyfile_password": "--ssl-keyfile-password",
    "protocol_min": "--ssl-protocol-min",
    "ca": "--ssl-ca",
    "client_verify": "--ssl-client-verify",
    "crl": "--ssl-crl",
}

#: Options that mean nothing without a certificate.
_NEED_CERTIFICATE = (
    ("ssl_keyfile", "--ssl-keyfile"),
    ("ssl_keyfile_password", "--ssl-keyfile-password"),
    ("ssl_ca", "--ssl-ca"),
    ("ssl_crl", "--ssl-crl"),
    ("ssl_client_verify", "--ssl-client-verify"),
    ("ssl_reload_interval", "--ssl-reload-interval"),
)


def settings(config: Any) -> dict | None:
    """`Worker(tls=...)`: the TLS options as the Rust side takes them, or
    None when TLS is off."""
    if config.ssl_certificate is None:
        return None
    return {
        "certificate": config.ssl_certificate,
        "keyfile": config.ssl_keyfile,
        "password": config.ssl_keyfile_password,
        "protocol_min": config.ssl_protocol_min,
        "ca": config.ssl_ca,
        "client_verify": config.ssl_client_verify,
        "crl": list(config.ssl_crl),
    }


def describe(exc: Exception) -> str:
    """A `TlsSettingError` as one line starting with its option."""
    setting, message = exc.args
    return f"{OPTIONS.get(setting, '--ssl-certificate')}: {message}"


def check(config: Any) -> None:
    """Loads the TLS files as every worker will, so that a bad one stops
    the start with the option to fix rather than a worker failing."""
    from ._diorite import TlsSettingError, check_tls

    tls = settings(config)
    if tls is None:
        for name, flag in _NEED_CERTIFICATE:
            if getattr(config, name):
                raise ConfigError(f"{flag} needs --ssl-certificate")
        return
    if config.ssl_keyfile is None:
        raise ConfigError("--ssl-certificate needs --ssl-keyfile")
    if config.uds is not None or (config.bind or "").startswith("unix:"):
        raise ConfigError("--ssl-certificate: TLS is served on TCP only, not on a Unix socket")
    try:
        check_tls(tls)
    except TlsSettingError as exc:
        raise ConfigError(describe(exc)) from None


def reload(worker: Any, why: str) -> bool:
    """Swaps in the certificate on disk now; on failure the one in use
    stays and the reason is logged."""
    from ._diorite import TlsSettingError

    try:
        worker.reload_tls()
    except TlsSettingError as exc:
        logger.error(
            "%s: TLS files not reloaded, the previous ones stay in use: %s", why, describe(exc)
        )
        return False
    logger.info("%s: TLS files reloaded; new connections use them", why)
    return True


def _stamps(paths: list[str]) -> list[tuple[int, int, int] | None]:
    """What tells a changed file: certbot replaces a symlink's target, so the
    inode changes too."""
    found: list[tuple[int, int, int] | None] = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            found.append(None)
        else:
            found.append((st.st_ino, st.st_mtime_ns, st.st_size))
    return found


def watch(loop: asyncio.AbstractEventLoop, worker: Any, config: Any) -> Callable[[], None]:
    """With `--ssl-reload-interval`, checks the TLS files on the event loop
    at that interval and reloads once they changed (and all exist).
    Returns what stops the checks."""
    interval = config.ssl_reload_interval
    if interval is None or config.ssl_certificate is None:
        return lambda: None
    paths = [config.ssl_certificate, config.ssl_keyfile, *filter(None, [config.ssl_ca])]
    paths += list(config.ssl_crl)
    seen = _stamps(paths)

    def check() -> None:
        nonlocal seen, pending
        now = _stamps(paths)
        # A file missing is a renewal half-way through: try next time.
        if now != seen and None not in now:
            seen = now
            reload(worker, "TLS files changed")
        pending = loop.call_later(interval, check)

    pending = loop.call_later(interval, check)
    return lambda: pending.cancel()
