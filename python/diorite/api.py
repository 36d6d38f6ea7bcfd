"""The Python API: `Server(...).serve()` runs diorite as the command would;
`await serve(app, ...)` runs it inside an asyncio program that is already
running."""

from __future__ import annotations

from . import cli, tls
from . import options as table
from .config import Config, ConfigError


def _config(target, options: dict) -> Config:
    """The settings, checked as the command line checks them; a bad one
    raises ConfigError (a ValueError) naming the keyword argument. The
    environment and config files are not read: the caller says it all."""
    config, _ = table.build([("python", table.from_python(options))])
    config.app = target if isinstance(target, str) else "<app object>"
    if config.uds_permissions is not None and config.uds is None:
        raise ConfigError("uds_permissions= needs uds=")
    # Named as on the command line (`--ssl-keyfile: ...`): the keyword is
    # the same name with underscores.
    tls.check(config)
    table.check_limits(config)
    table.static_files(config)
    return config


class Server:
    """A server configured like the command line, with the same option names
    (as keyword arguments: `Server("main:app", interface="wsgi", workers=2)`).

    `target` is "module:attribute", or the app object itself when it runs in
    this process (one worker, no supervisor)."""

    def __init__(self, target, **options):
        self.target = target
        self.config = _config(target, options)
        if not isinstance(target, str) and self.config.supervised:
            raise ValueError("worker processes import the app: give it as 'module:attribute'")

    def serve(self) -> int:
        """Serves until SIGINT/SIGTERM; returns the exit status."""
        cli.load_env_files(self.config.env_files)
        if self.config.supervised:
            from .supervisor import run

            return run(self.config)
        from .server import run

        app = None if isinstance(self.target, str) else self.target
        return run(self.config, app=app)


async def serve(app, **options) -> None:
    """Serves `app` (an object, or "module:attribute") from the running event
    loop until the calling task is cancelled, then stops gracefully (in-flight
    requests get `shutdown_timeout` seconds). Signals are left to the host
    program. Only the async interfaces fit here: asgi, asginl, rsgi (and
    wsgi, whose threads are the server's own)."""
    from . import logs
    from .loader import load_app
    from .server import bind, serve_app, unbind

    config = _config(app, options)
    failed = logs.configure_from(config)
    if failed:
        raise ConfigError(failed)
    if isinstance(app, str):
        app = load_app(app, config.factory, config.working_dir)
    sock = bind(config)
    try:
        await serve_app(app, sock, config, handle_signals=False)
    finally:
        sock.close()
        unbind(config)


__all__ = ["ConfigError", "Server", "serve"]
