"""Running one worker: bind, start the app, serve, stop gracefully.

The event loop runs on the main thread and owns every Python object of the
app; tokio threads run the sockets and hand requests to the loop through
the worker's bridge (see src/bridge/).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import socket
import stat
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from . import __version__, logs, memory, metrics, pidfile, rsgi, tls, wsgi
from .asgi import (
    Lifespan,
    make_runner,
    scope_template,
    task_spawner,
)
from .config import Config
from .limits import raise_open_files_limit
from .loader import AppLoadError, describe_interface, load_app, resolve_interface
from .logs import logger
from .options import static_files
from .proctitle import set_title

# Set when the process must end without finalizing the interpreter.
_HARD_EXIT = threading.Event()

# The signals that stop a server gracefully (a second one cuts it short).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass
class Inherited:
    """What a supervised worker gets from the supervisor."""

    fd: int
    ready_fd: int
    #: The shared block this worker counts into (--metrics, the heartbeat).
    metrics_fd: int | None = None


def bind(config: Config) -> socket.socket:
    if config.uds:
        return bind_unix(config)
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.bind((config.host, config.port))
    sock.listen(config.backlog)
    sock.setblocking(False)
    return sock


def bind_unix(config: Config) -> socket.socket:
    path = config.uds
    # A socket file left by an earlier run is replaced; any other file is not.
    if os.path.exists(path):
        if not stat.S_ISSOCK(os.stat(path).st_mode):
            raise OSError(errno.EEXIST, f"{path} exists and is not a socket")
        os.remove(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    if config.uds_permissions is not None:
        os.chmod(path, config.uds_permissions)
    sock.listen(config.backlog)
    sock.setblocking(False)
    return sock


def report_listen_error(config: Config, exc: OSError, metrics: bool = False) -> None:
    """One line for a listening socket that could not be opened: the
    server's, or with `metrics` the one of --metrics-address/--metrics-port."""
    if metrics:
        target = f"the metrics address {config.metrics_address}:{config.metrics_port}"
    else:
        target = config.uds or f"{config.host}:{config.port}"
    logger.error("cannot listen on %s: %s", target, exc.strerror or exc)


def unbind(config: Config) -> None:
    if config.uds:
        with contextlib.suppress(FileNotFoundError):
            os.remove(config.uds)


def where(sock: socket.socket, secure: bool = False) -> str:
    """How the log names the listening socket; `secure`: it speaks TLS."""
    if sock.family == socket.AF_UNIX:
        return f"unix:{sock.getsockname()}"
    host, port = sock.getsockname()[:2]
    return f"{'https' if secure else 'http'}://{f'[{host}]' if ':' in host else host}:{port}"


HTTP_NAMES = {"auto": "HTTP/1.1 and HTTP/2", "1": "HTTP/1.1", "2": "HTTP/2"}


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def new_event_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if kind == "uvloop":
                raise
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def run(config: Config, inherited: Inherited | None = None, app=None) -> int:
    """Serves until SIGINT/SIGTERM; returns the process exit status.

    A worker started by the supervisor gets `inherited`: the listening
    socket the supervisor bound and a pipe to say it is ready on."""
    failed = logs.configure_from(config)
    if failed:
        # Shown even with --no-log: the process cannot start without it.
        print(f"diorite: error: {failed}", file=sys.stderr)
        return 2
    if config.ssl_certificate is not None:
        # SIGHUP reloads the certificate once serving; one that arrives
        # while the app still loads (certbot renewing just then) must not
        # end the process, as SIGHUP's default action would.
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    raise_open_files_limit()
    if config.process_name:
        set_title(config.process_name if inherited is None else f"{config.process_name} [worker]")
    if inherited is None and config.pid_file:
        pidfile.write(config.pid_file)
    try:
        if app is None:
            app = load_app(config.app, config.factory, config.working_dir)
        # Before binding: an app of no known shape stops start-up here.
        resolved = resolve_interface(app, config.interface)
    except AppLoadError as exc:
        # Shown even with --no-log: the process cannot start without it.
        print(f"diorite: error: {exc}", file=sys.stderr)
        return 1
    try:
        loop = new_event_loop(config.loop)
    except ImportError:
        logger.error("--loop uvloop was asked for, but uvloop is not installed")
        return 2
    # Once the socket listens, a client (or a test) sees the server up and
    # may stop it at once. Until serve_app installs the loop's handlers, a
    # stop signal waits in the kernel instead of raising KeyboardInterrupt
    # wherever start-up happens to be, where code that catches everything
    # (an app's lifespan, a Rust call) could swallow it and leave the
    # server running with no signal left to stop it.
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        return _run_bound(config, inherited, app, resolved, loop)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def _run_bound(config: Config, inherited: Inherited | None, app, resolved, loop) -> int:
    if inherited is not None:
        sock = socket.socket(fileno=inherited.fd)
    else:
        try:
            sock = bind(config)
        except OSError as exc:
            report_listen_error(config, exc)
            return 1
    block = served = None
    if inherited is None and config.metrics_block:
        block = metrics.Block()
        if config.metrics:
            try:
                served = single_process_metrics(config, block)
            except OSError as exc:
                report_listen_error(config, exc, metrics=True)
                sock.close()
                block.close()
                return 1
    asyncio.set_event_loop(loop)
    ready_fd = inherited.ready_fd if inherited is not None else None
    if inherited is not None:
        metrics_fd = inherited.metrics_fd
    else:
        metrics_fd = block.fd if block is not None else None
    try:
        code = loop.run_until_complete(
            serve_app(
                app,
                sock,
                config,
                ready_fd,
                resolved=resolved,
                owns_socket=inherited is None,
                metrics_fd=metrics_fd,
            )
        )
    finally:
        sock.close()
        loop.close()
        if served is not None:
            served.stop()
        if block is not None:
            block.close()
        if inherited is None:
            unbind(config)
            if config.pid_file:
                pidfile.remove(config.pid_file)
    if _HARD_EXIT.is_set():
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def single_process_metrics(config: Config, block: metrics.Block) -> metrics.MetricsServer:
    """`/metrics` and `/health` of a server without a supervisor: this
    process's one block, read on a thread of its own."""
    pid = os.getpid()

    def scrape() -> metrics.Scrape:
        totals = metrics.Totals()
        totals.add(block.values())
        return metrics.Scrape(totals, [("worker", pid)], workers=1, restarts={})

    served = metrics.MetricsServer(
        config.metrics_address,
        config.metrics_port,
        scrape,
        lambda: [(pid, block.heartbeat_ms())],
    )
    served.start()
    logger.info("metrics and health on %s/metrics and /health", served.address)
    return served


def start_heartbeat(loop: asyncio.AbstractEventLoop, worker) -> Callable[[], None]:
    """Has the event loop write its heartbeat every HEARTBEAT_INTERVAL; a loop
    that stops running callbacks stops beating. Returns how to stop it."""
    handle = None

    def beat() -> None:
        nonlocal handle
        worker.heartbeat(int(time.monotonic() * 1000))
        handle = loop.call_later(metrics.HEARTBEAT_INTERVAL, beat)

    beat()

    def stop() -> None:
        if handle is not None:
            handle.cancel()

    return stop


async def serve_app(
    app,
    sock: socket.socket,
    config: Config,
    ready_fd: int | None = None,
    handle_signals: bool = True,
    resolved: tuple[str, str] | None = None,
    owns_socket: bool = True,
    metrics_fd: int | None = None,
) -> int:
    """Serves until SIGINT/SIGTERM (or, with `handle_signals` off, until the
    calling task is cancelled), then stops gracefully. `resolved` is the
    interface and how it was chosen, when the caller already worked it out.
    `owns_socket` is false in a supervisor's worker: the socket is shared
    and stays open while one worker replaces another."""
    from ._diorite import Worker

    loop = asyncio.get_running_loop()
    interface, how = resolved or resolve_interface(app, config.interface)
    stopping = asyncio.Event()
    if handle_signals:
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, stopping.set)
        # run() held them back until now; one sent meanwhile lands here.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    lifespan = Lifespan(app) if interface == "asgi" else None
    if lifespan is not None:
        started = await _start_unless_stopped(lifespan, stopping)
        if started is None:
            logger.info("stopped before the app finished starting")
            _remove_signal_handlers(loop, handle_signals)
            return 0
        if not started:
            _remove_signal_handlers(loop, handle_signals)
            return 1
    worker = Worker(
        sock.fileno(),
        unix=sock.family == socket.AF_UNIX,
        http=config.http,
        runtime_threads=config.runtime_threads,
        backpressure=config.effective_backpressure,
        backpressure_timeout=config.effective_backpressure_timeout,
        keep_alive=config.http1_keep_alive,
        pipeline_flush=config.http1_pipeline_flush,
        h2_max_concurrent_streams=config.http2_max_concurrent_streams,
        http2={
            "adaptive_window": config.http2_adaptive_window,
            "initial_connection_window_size": config.http2_initial_connection_window_size,
            "initial_stream_window_size": config.http2_initial_stream_window_size,
            "keep_alive_interval": config.http2_keep_alive_interval,
            "keep_alive_timeout": config.http2_keep_alive_timeout,
            "max_frame_size": config.http2_max_frame_size,
            "max_send_buffer_size": config.http2_max_send_buffer_size,
        },
        limits={
            "buffer_size": config.http1_buffer_size,
            "request_line": config.limit_request_line or None,
            "request_fields": config.limit_request_fields,
            "request_field_size": config.limit_request_field_size or None,
            "max_body_size": config.max_body_size,
            "h2_max_headers_size": config.http2_max_headers_size,
            "header_read_timeout": config.http1_header_read_timeout,
            "keep_alive_timeout": config.timeout_keep_alive,
            "body_read_timeout": config.body_read_timeout,
            "write_timeout": config.write_timeout,
            "connections": config.limit_connections,
        },
        tls=tls.settings(config),
        proxy={
            "headers": config.proxy_headers,
            "protocol": config.proxy_protocol,
            "forwarded_allow_ips": config.forwarded_allow_ips,
        },
        static_files=static_files(config),
        websockets=config.websockets,
        ws_max_message_size=config.ws_max_message_size,
        ws_ping_interval=config.ws_ping_interval,
        ws_ping_timeout=config.ws_ping_timeout,
        metrics=None
        if metrics_fd is None
        else {"fd": metrics_fd, "interface": "asgi" if interface == "asginl" else interface},
        access_log=logs.access_settings(config),
    )
    loop.add_reader(worker.fileno(), worker.run_jobs)
    stop_beating = start_heartbeat(loop, worker) if metrics_fd is not None else None
    # Only in a process of our own: a host program's loop and collector are
    # the host's to manage.
    stop_trimming = memory.start_trimming(loop) if handle_signals else None
    secure = config.ssl_certificate is not None
    if interface == "rsgi":
        rsgi.call_hook(app, "__rsgi_init__", loop)
        worker.serve_rsgi(rsgi.make_runner(app), task_spawner(loop), loop)
    elif interface == "wsgi":
        template = wsgi.environ_template(
            secure=secure, multiprocess=config.workers > 1, root_path=config.url_path_prefix
        )
        worker.serve_wsgi(
            app, template, config.blocking_threads, config.blocking_threads_idle_timeout
        )
    else:
        state = lifespan.state if lifespan is not None and lifespan.supported else None
        root = config.url_path_prefix
        ws_template = (
            scope_template("websocket", root_path=root, secure=secure)
            if config.websockets
            else None
        )
        worker.serve_asgi(
            make_runner(app),
            task_spawner(loop),
            loop,
            scope_template(root_path=root, secure=secure),
            ws_template,
            state,
        )

    if handle_signals:
        if secure:
            # In a worker of a supervisor too: the supervisor's own SIGHUP
            # replaces workers, but one sent to a worker reloads in place.
            loop.add_signal_handler(signal.SIGHUP, tls.reload, worker, "SIGHUP")
    stop_watching = tls.watch(loop, worker, config)
    logger.info(
        "diorite %s serving %s (%s, %s) on %s with %s, %s, %s",
        __version__,
        config.app,
        describe_interface(interface),
        how,
        where(sock, secure),
        "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio",
        HTTP_NAMES[config.http],
        plural(config.workers, "worker"),
    )
    if ready_fd is not None:
        os.write(ready_fd, b"R")
        os.close(ready_fd)
    cancelled = False
    try:
        await stopping.wait()
    except asyncio.CancelledError:
        if handle_signals:
            raise
        cancelled = True  # the host program stops us: shut down, then re-raise
    logger.info("shutting down: waiting up to %ss for in-flight requests", config.shutdown_timeout)
    stop_watching()

    stopped = loop.create_future()

    def on_stopped(clean: bool) -> None:
        if not stopped.done():
            stopped.set_result(clean)

    worker.shutdown(config.shutdown_timeout, on_stopped)
    if owns_socket:
        # The worker has let go of its copy of the socket, so this closes
        # it: new clients are refused at once (a load balancer moves on)
        # instead of waiting in the backlog for a server that is leaving.
        sock.close()
    forced = False

    def force() -> None:
        nonlocal forced
        if not stopped.done():
            forced = True
            logger.warning("second signal: cutting off the requests still running")
            on_stopped(False)

    if handle_signals:
        # A second signal skips the wait.
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, force)
    clean = await stopped
    if not clean and not forced:
        logger.warning("requests still running after %ss were cut off", config.shutdown_timeout)
    loop.remove_reader(worker.fileno())
    if stop_beating is not None:
        stop_beating()
    if stop_trimming is not None:
        stop_trimming()
    if not worker.close():
        # App code is still running on a pool thread (a WSGI request that
        # outlived the shutdown timeout). Finalizing the interpreter under
        # it would crash, so the process ends without finalizing.
        logger.warning("app code still running after shutdown; exiting without waiting for it")
        _HARD_EXIT.set()
    await _cancel_app_tasks(only_requests=not handle_signals)
    if lifespan is not None:
        await lifespan.shutdown()
    if interface == "rsgi":
        rsgi.call_hook(app, "__rsgi_del__", loop)
    _remove_signal_handlers(loop, handle_signals)
    logger.info("stopped")
    if cancelled:
        raise asyncio.CancelledError
    return 0


async def _start_unless_stopped(lifespan: Lifespan, stopping: asyncio.Event) -> bool | None:
    """The app's lifespan startup, cut short by a stop signal: whether it
    started, or None when a signal came first (an app waiting at startup
    for a database that is down can still be stopped with ^C)."""
    starting = asyncio.ensure_future(lifespan.startup())
    stopped = asyncio.ensure_future(stopping.wait())
    await asyncio.wait({starting, stopped}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if starting.done():
        return starting.result()
    starting.cancel()
    await lifespan.abandon()
    return None


def _remove_signal_handlers(loop: asyncio.AbstractEventLoop, handle_signals: bool) -> None:
    if handle_signals:
        for sig in (*STOP_SIGNALS, signal.SIGHUP):
            loop.remove_signal_handler(sig)


async def _cancel_app_tasks(only_requests: bool) -> None:
    """Cancels what the app left running: in a process of our own every task
    but the lifespan's; embedded in a host program, only request tasks."""
    current = asyncio.current_task()
    tasks = [
        t
        for t in asyncio.all_tasks()
        if t is not current
        and not t.get_name().startswith("lifespan")
        and (t.get_name() == "diorite-request" or not only_requests)
    ]
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=5)
