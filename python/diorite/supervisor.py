"""The supervisor: binds the socket once, runs `--workers` worker processes
on it, replaces them when they die, age or grow, and stops them gracefully.

It runs no app code: workers are fresh interpreters (`python -m
diorite.worker`) that inherit the listening socket, so a worker restart
never closes the socket and never refuses a connection.

Signals: SIGINT/SIGTERM stop every worker gracefully (SIGKILL after
`--workers-kill-timeout`); SIGHUP replaces the workers one by one, each
new one ready before the old one is told to stop.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import random
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time

from . import __version__, logs, metrics, pidfile
from .config import Config
from .loader import describe_interface
from .logs import logger
from .proctitle import set_title
from .server import HTTP_NAMES, bind, plural, report_listen_error, unbind, where
from .worker import CONFIG_ENV, FD_ENV, METRICS_ENV, READY_ENV, STACK_SIGNAL

# A worker that dies before it is ready this many times in a row is a
# crash loop: the server stops instead of spinning.
CRASH_LOOP_LIMIT = 3
# How long a hung worker gets to write its stacks before SIGKILL.
STACK_DUMP_GRACE = 1.0
READY_TIMEOUT = 60.0
TICK = 0.5


class Worker:
    def __init__(
        self,
        proc: subprocess.Popen,
        ready_fd: int,
        block: metrics.Block | None,
        max_requests: int = 0,
    ):
        self.proc = proc
        self.ready_fd = ready_fd
        #: Its counters and heartbeat (--metrics, --workers-loop-timeout).
        self.block = block
        #: When its hung loop was found (--workers-loop-timeout).
        self.hung_at: float | None = None
        self.ready = False
        self.started = time.monotonic()
        self.retiring = False
        # --workers-max-rss: when it was last measured, and how many
        # measurements in a row were over the limit.
        self.rss_sampled = 0.0
        self.rss_over = 0
        #: --max-requests plus this worker's jitter (0: no limit).
        self.max_requests = max_requests

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_mib(self) -> float:
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0


def describe(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


class Supervisor:
    def __init__(self, config: Config):
        self.config = config
        self.sock = bind(config)
        self.sock.setblocking(True)
        self.workers: dict[int, Worker] = {}
        self.selector = selectors.DefaultSelector()
        self.stopping = False
        self.failed = False
        self.crashes = 0
        self.pending_respawns: list[float] = []
        self.rolling: list[Worker] = []
        #: Why the workers in `rolling` are replaced: "sighup" or "reload".
        self.rolling_reason = "sighup"
        #: Workers started to replace another, by reason (the metric's label).
        self.respawns = dict.fromkeys(metrics.RESPAWN_REASONS, 0)
        self.sigr, self.sigw = os.pipe()
        os.set_blocking(self.sigw, False)
        os.set_blocking(self.sigr, False)
        signal.set_wakeup_fd(self.sigw)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(sig, lambda *_: None)
        self.selector.register(self.sigr, selectors.EVENT_READ, "signal")
        #: Counters of the workers that ended, so sums never go down.
        self.retired = metrics.Totals() if config.metrics_block else None
        # The metrics thread reads blocks the loop closes when workers end.
        self.blocks_lock = threading.Lock()
        self.metrics_server: metrics.MetricsServer | None = None
        self.watcher: Watcher | None = None
        if config.reload:
            self.watcher = Watcher(config)
            self.selector.register(self.watcher.wake_r, selectors.EVENT_READ, "reload")

    def serve_metrics(self) -> None:
        """Starts `/metrics` and `/health` (OSError when it cannot listen)."""
        config = self.config
        self.metrics_server = metrics.MetricsServer(
            config.metrics_address,
            config.metrics_port,
            self.scrape,
            self.beats,
            min(metrics.HEALTH_STALE, config.workers_loop_timeout or metrics.HEALTH_STALE),
        )
        self.metrics_server.start()
        logger.info("metrics and health on %s/metrics and /health", self.metrics_server.address)

    def live(self) -> list[Worker]:
        # A copy: the metrics thread reads while the loop changes the dict.
        return [w for w in list(self.workers.values()) if w.block is not None]

    def scrape(self) -> metrics.Scrape:
        with self.blocks_lock:
            return self._scrape()

    def _scrape(self) -> metrics.Scrape:
        totals = metrics.Totals()
        for name, value in self.retired.counters.items():
            totals.counters[name] = value
        totals.requests.update(self.retired.requests)
        totals.buckets = {k: list(v) for k, v in self.retired.buckets.items()}
        totals.duration_us.update(self.retired.duration_us)
        processes = [("supervisor", os.getpid())]
        workers = self.live()
        for worker in workers:
            totals.add(worker.block.values())
            processes.append(("worker", worker.pid))
        return metrics.Scrape(totals, processes, workers=len(workers), restarts=dict(self.respawns))

    def beats(self) -> list[tuple[int, int]]:
        """The heartbeats of the workers that serve (ready, not leaving)."""
        with self.blocks_lock:
            return [
                (w.pid, w.block.heartbeat_ms())
                for w in self.live()
                if w.ready and not w.retiring and w.hung_at is None
            ]

    def spawn(self, replacing: str | None = None) -> Worker:
        """Starts a worker; `replacing`: why, when it replaces another (one
        of metrics.RESPAWN_REASONS)."""
        if replacing is not None:
            self.respawns[replacing] += 1
        ready_r, ready_w = os.pipe()
        env = dict(os.environ)
        env[CONFIG_ENV] = json.dumps(dataclasses.asdict(self.config))
        env[FD_ENV] = str(self.sock.fileno())
        env[READY_ENV] = str(ready_w)
        block = metrics.Block() if self.config.metrics_block else None
        fds = (self.sock.fileno(), ready_w)
        if block is not None:
            env[METRICS_ENV] = str(block.fd)
            fds += (block.fd,)
        proc = subprocess.Popen(
            [sys.executable, "-m", "diorite.worker"],
            pass_fds=fds,
            env=env,
            # Workers get signals from the supervisor only, not from the
            # terminal's Ctrl-C, so a stop is one orderly sequence.
            start_new_session=True,
        )
        os.close(ready_w)
        limit = self.config.max_requests
        if limit:
            limit += random.randint(0, self.config.max_requests_jitter)
        worker = Worker(proc, ready_r, block, limit)
        self.workers[proc.pid] = worker
        self.selector.register(ready_r, selectors.EVENT_READ, worker)
        logger.info("started worker %d", proc.pid)
        return worker

    def on_reload(self) -> None:
        changed = self.watcher.take()
        if not changed or self.stopping:
            return
        shown = ", ".join(changed[:3]) + (
            f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        )
        logger.info("changes in %s: restarting workers", shown)
        self.crashes = 0
        live = [w for w in self.workers.values() if not w.retiring]
        if not live:
            # The last start failed: try the new code straight away.
            for _ in range(self.config.workers):
                self.spawn("reload")
            return
        self.rolling, self.rolling_reason = live, "reload"

    def forget(self, worker: Worker) -> None:
        self.workers.pop(worker.pid, None)
        try:
            self.selector.unregister(worker.ready_fd)
        except (KeyError, ValueError):
            pass
        os.close(worker.ready_fd)
        if worker.block is not None:
            # Its counters stay in the sums; its gauges were zero or die
            # with it.
            with self.blocks_lock:
                self.retired.add(worker.block.values(), with_gauges=False)
                worker.block.close()
                worker.block = None

    def stop_worker(self, worker: Worker) -> None:
        worker.retiring = True
        worker.retire_deadline = time.monotonic() + self.config.effective_kill_timeout
        try:
            worker.proc.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass

    # The event loop -------------------------------------------------------

    def run(self) -> int:
        interface = self.config.interface
        if interface == "auto":
            interface = "interface found from the app"
        else:
            interface = describe_interface(interface)
        logger.info(
            "diorite %s supervisor %d serving %s (%s) on %s with %s, %s",
            __version__,
            os.getpid(),
            self.config.app,
            interface,
            where(self.sock, self.config.ssl_certificate is not None),
            HTTP_NAMES[self.config.http],
            plural(self.config.workers, "worker"),
        )
        kill, grace = self.config.workers_kill_timeout, self.config.shutdown_timeout
        if kill is not None and kill < grace:
            logger.warning(
                "--workers-kill-timeout %ss is shorter than --shutdown-timeout %ss: a stopping "
                "worker is killed after %ss, with its requests in flight",
                kill,
                grace,
                kill,
            )
        for _ in range(self.config.workers):
            self.spawn()
        while (
            self.workers or (self.pending_respawns and not self.stopping) or self.waiting_for_fix()
        ):
            for key, _ in self.selector.select(TICK):
                if key.data == "signal":
                    self.on_signals()
                elif key.data == "reload":
                    self.on_reload()
                else:
                    self.on_ready(key.data)
            self.reap()
            self.tick()
        return 1 if self.failed else 0

    def on_signals(self) -> None:
        try:
            data = os.read(self.sigr, 512)
        except BlockingIOError:
            return
        for signum in data:
            if signum in (signal.SIGINT, signal.SIGTERM) and self.stopping:
                logger.warning("second signal: workers cut off the requests still running")
                for worker in list(self.workers.values()):
                    with contextlib.suppress(ProcessLookupError):
                        worker.proc.send_signal(signal.SIGTERM)
            elif signum in (signal.SIGINT, signal.SIGTERM):
                logger.info(
                    "stopping: requests get %ss to finish",
                    min(self.config.shutdown_timeout, self.config.effective_kill_timeout),
                )
                self.begin_stop()
            elif signum == signal.SIGHUP and not self.stopping:
                logger.info("SIGHUP: replacing workers one by one")
                self.rolling = [w for w in self.workers.values() if not w.retiring]
                self.rolling_reason = "sighup"

    def on_ready(self, worker: Worker) -> None:
        try:
            data = os.read(worker.ready_fd, 16)
        except OSError:
            data = b""
        self.selector.unregister(worker.ready_fd)
        if data and not worker.ready:
            worker.ready = True
            self.crashes = 0
            logger.info("worker %d is ready", worker.pid)

    def reap(self) -> None:
        for worker in list(self.workers.values()):
            code = worker.proc.poll()
            if code is None:
                continue
            self.forget(worker)
            if worker.hung_at is not None:
                logger.info(
                    "worker %d with the hung event loop is gone (%s)", worker.pid, describe(code)
                )
                continue
            if worker.retiring or self.stopping:
                if code != 0 and not worker.retiring:
                    self.failed = True
                logger.info("worker %d stopped (%s)", worker.pid, describe(code))
                continue
            logger.error("worker %d died unexpectedly (%s)", worker.pid, describe(code))
            replaced = next(
                (w for w in self.workers.values() if getattr(w, "successor", None) is worker), None
            )
            if replaced is not None and self.config.reload:
                # New code that does not start: the old workers keep serving.
                replaced.successor = None
                self.rolling.clear()
                logger.error("the new code failed to start; the running workers keep serving it")
                continue
            if self.config.reload and not worker.ready:
                logger.error("the app failed to start; waiting for a change to retry")
                continue
            # Replaced or not, the exit status will say something failed.
            # (Under --reload, new code that does not start is not a failure
            # of the server: it is what editing looks like.)
            self.failed = True
            if not worker.ready:
                self.crashes += 1
                if self.crashes >= CRASH_LOOP_LIMIT:
                    logger.error(
                        "workers keep dying during start-up (%d times in a row); stopping",
                        self.crashes,
                    )
                    self.failed = True
                    self.begin_stop()
                    continue
            if self.config.respawn_failed_workers:
                self.pending_respawns.append(time.monotonic() + self.config.respawn_interval)
            else:
                logger.error("stopping (start with --respawn-failed-workers to replace workers)")
                self.failed = True
                self.begin_stop()

    def begin_stop(self) -> None:
        self.stopping = True
        self.pending_respawns.clear()
        for other in list(self.workers.values()):
            self.stop_worker(other)
        # New clients are refused at once while the workers drain (a rolling
        # replacement never gets here, so it never refuses anyone). A TCP
        # socket shut down (not just this process's copy closed) stops
        # listening in every worker. A Unix one would stay readable with
        # nothing to accept, spinning the workers' accept loops: removing
        # its file refuses new clients instead.
        if self.sock.family == socket.AF_UNIX:
            unbind(self.config)
        else:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RD)

    def tick(self) -> None:
        now = time.monotonic()
        for worker in self.workers.values():
            if worker.retiring and now >= getattr(worker, "retire_deadline", now):
                logger.warning("worker %d did not stop in time; killing it", worker.pid)
                try:
                    worker.proc.kill()
                except ProcessLookupError:
                    pass
                worker.retire_deadline = now + 3600
        self.watch_loops(now)
        if self.stopping:
            return
        due = [t for t in self.pending_respawns if t <= now]
        for t in due:
            self.pending_respawns.remove(t)
            self.spawn("died")
        self.replace_one_if_needed(now)

    def watch_loops(self, now: float) -> None:
        """--workers-loop-timeout: a worker whose event loop has not beaten
        for that long has its threads' stacks written to the log (SIGUSR1,
        faulthandler), is killed a moment later and replaced at once."""
        limit = self.config.workers_loop_timeout
        if limit is None:
            return
        now_ms = metrics.monotonic_ms()
        for worker in list(self.workers.values()):
            if worker.hung_at is not None:
                if now - worker.hung_at >= STACK_DUMP_GRACE:
                    with contextlib.suppress(ProcessLookupError):
                        worker.proc.kill()
                    worker.hung_at = now + 3600  # killed once
                continue
            if not worker.ready or worker.retiring or worker.block is None:
                continue
            beat = worker.block.heartbeat_ms()
            if beat == 0 or now_ms - beat < limit * 1000:
                continue
            logger.error(
                "worker %d: event loop blocked for %.1fs (--workers-loop-timeout %ss); "
                "its threads' stacks follow, then it is killed and replaced",
                worker.pid,
                (now_ms - beat) / 1000,
                limit,
            )
            worker.hung_at = now
            with contextlib.suppress(ProcessLookupError):
                worker.proc.send_signal(STACK_SIGNAL)
            if not self.stopping:
                self.spawn("hung")

    def replace_one_if_needed(self, now: float) -> None:
        """Replaces at most one worker at a time: the new one must be ready
        before the old one is told to stop, so capacity never drops."""
        if any(not w.ready and not w.retiring for w in self.workers.values()):
            return  # a replacement is still starting
        config = self.config
        for worker in list(self.workers.values()):
            if worker.retiring or not worker.ready:
                continue
            reason = label = None
            if worker in self.rolling:
                reason, label = "reload requested", self.rolling_reason
            elif config.workers_lifetime and now - worker.started >= config.workers_lifetime:
                reason, label = f"lifetime of {config.workers_lifetime}s reached", "lifetime"
            elif worker.max_requests and worker.block.requests() >= worker.max_requests:
                reason, label = f"{worker.max_requests} requests served", "max_requests"
            elif self.over_max_rss(worker, now):
                reason, label = f"memory above {config.workers_max_rss} MiB", "max_rss"
                if config.rss_samples > 1:
                    reason += f" in {config.rss_samples} measurements in a row"
            if reason is None:
                continue
            if getattr(worker, "successor", None) is None:
                logger.info("replacing worker %d: %s", worker.pid, reason)
                worker.successor = self.spawn(label)
                return
            if worker.successor.ready:
                if worker in self.rolling:
                    self.rolling.remove(worker)
                self.stop_worker(worker)
            return

    def over_max_rss(self, worker: Worker, now: float) -> bool:
        """Measures `worker` once per --rss-sample-interval; true once
        --rss-samples measurements in a row were over --workers-max-rss."""
        limit = self.config.workers_max_rss
        if limit is None:
            return False
        if now - worker.rss_sampled >= self.config.rss_sample_interval:
            worker.rss_sampled = now
            worker.rss_over = worker.rss_over + 1 if worker.rss_mib() > limit else 0
        return worker.rss_over >= self.config.rss_samples

    def waiting_for_fix(self) -> bool:
        """With --reload, a server whose app failed to start waits for the
        next change instead of exiting."""
        return self.watcher is not None and not self.stopping

    def close(self) -> None:
        if self.metrics_server is not None:
            self.metrics_server.stop()
        signal.set_wakeup_fd(-1)
        if self.watcher is not None:
            self.watcher.stop()
        self.sock.close()


class Watcher:
    """Watches files for --reload on a thread (watchfiles, Rust-backed) and
    wakes the supervisor's loop through a pipe."""

    def __init__(self, config: Config):
        import re
        import threading

        from watchfiles import DefaultFilter, watch

        ignore = [re.compile(p) for p in config.reload_ignore_patterns]

        class Filter(DefaultFilter):
            def __call__(self, change, path: str) -> bool:
                return super().__call__(change, path) and not any(r.search(path) for r in ignore)

        watch_filter = Filter(
            ignore_dirs=(*DefaultFilter.ignore_dirs, *config.reload_ignore_dirs),
            ignore_paths=[os.path.abspath(p) for p in config.reload_ignore_paths],
        )

        self.paths = config.reload_paths or [config.working_dir or os.getcwd()]
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.changed: list[str] = []

        def run() -> None:
            for changes in watch(
                *self.paths,
                watch_filter=watch_filter,
                stop_event=self.stop_event,
                step=config.reload_tick,
            ):
                with self.lock:
                    self.changed.extend(sorted({path for _, path in changes}))
                os.write(self.wake_w, b"R")

        self.thread = threading.Thread(target=run, name="diorite-reload", daemon=True)
        self.thread.start()
        logger.info("watching %s for changes", ", ".join(self.paths))

    def take(self) -> list[str]:
        try:
            os.read(self.wake_r, 512)
        except BlockingIOError:
            pass
        with self.lock:
            changed, self.changed = self.changed, []
        return changed

    def stop(self) -> None:
        self.stop_event.set()


def run(config: Config) -> int:
    failed = logs.configure_from(config)
    if failed:
        print(f"diorite: error: {failed}", file=sys.stderr)
        return 2
    if config.process_name:
        set_title(config.process_name)
    if config.pid_file:
        pidfile.write(config.pid_file)
    try:
        try:
            supervisor = Supervisor(config)
        except OSError as exc:
            report_listen_error(config, exc)
            return 1
        try:
            if config.metrics:
                try:
                    supervisor.serve_metrics()
                except OSError as exc:
                    report_listen_error(config, exc, metrics=True)
                    return 1
            return supervisor.run()
        finally:
            supervisor.close()
    finally:
        unbind(config)
        if config.pid_file:
            pidfile.remove(config.pid_file)
