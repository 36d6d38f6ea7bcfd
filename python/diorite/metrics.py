"""`--metrics` and the liveness check: reading the workers' counters and
serving them, in Prometheus's text format, on their own address.

Each worker counts into a small block of shared memory (a memfd the
supervisor creates and the worker inherits; see src/http/metrics.rs): the
Rust I/O threads add to its atomics, and the worker's event loop writes a
heartbeat into it twice a second. The process serving `/metrics` maps the
same blocks and sums them at scrape time. Nothing is asked of a worker, so
a worker whose event loop hangs is still read, and `/health` tells it from
a live one by its heartbeat. (A pipe or socket queried per scrape would
need a live worker to answer; files on disk would need cleaning up.)

The text format is written by `prometheus_client` (the `metrics` extra).
"""

from __future__ import annotations

import mmap
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

#: How often a worker's event loop beats.
HEARTBEAT_INTERVAL = 0.5
#: A loop not seen for this long makes `/health` answer 503.
HEALTH_STALE = 2.0
#: Why a worker replaced another: it died (--respawn-failed-workers), its
#: event loop hung (--workers-loop-timeout), --workers-lifetime,
#: --workers-max-rss, --max-requests, SIGHUP, or changed files (--reload).
RESPAWN_REASONS = ("died", "hung", "lifetime", "max_rss", "max_requests", "sighup", "reload")

MISSING = "--metrics needs the prometheus-client package: pip install 'diorite[metrics]'"


def _layout() -> dict:
    from ._diorite import metrics_layout

    return metrics_layout()


def monotonic_ms() -> int:
    """CLOCK_MONOTONIC in milliseconds: the same clock in every process."""
    return int(time.monotonic() * 1000)


class Block:
    """One worker's counters, mapped. Created (and owned) by the process that
    serves `/metrics`; the worker gets `fd`."""

    def __init__(self) -> None:
        layout = _layout()
        self.size = layout["size"]
        if hasattr(os, "memfd_create"):
            self.fd = os.memfd_create("diorite-metrics")
        else:  # not Linux: an unlinked temporary file
            import tempfile

            handle, path = tempfile.mkstemp(prefix="diorite-metrics-")
            os.unlink(path)
            self.fd = handle
        os.ftruncate(self.fd, self.size)
        self.map = mmap.mmap(self.fd, self.size)
        self.view = memoryview(self.map).cast("Q")
        self.index = {name: i for i, name in enumerate(layout["slots"])}
        #: Where the latency histogram's buckets are.
        self.histogram = slice(len(self.index), len(self.index) + len(layout["buckets"]) + 1)

    def values(self) -> list[int]:
        return self.view.tolist()

    def heartbeat_ms(self) -> int:
        return self.view[self.index["heartbeat_ms"]]

    def requests(self) -> int:
        """Requests the worker has answered (its latency histogram's count)."""
        return sum(self.view[self.histogram])

    def close(self) -> None:
        self.view.release()
        self.map.close()
        os.close(self.fd)


@dataclass
class Totals:
    """Counters summed over workers (and over the workers that ended)."""

    requests: dict[tuple[str, str, str], int] = field(default_factory=dict)
    #: Per interface: histogram buckets (not cumulative) and the sum in µs.
    buckets: dict[str, list[int]] = field(default_factory=dict)
    duration_us: dict[str, int] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    gauges: dict[str, int] = field(default_factory=dict)

    def add(self, values: list[int], with_gauges: bool = True) -> None:
        layout = _layout()
        slots = {name: values[i] for i, name in enumerate(layout["slots"])}
        if not slots["magic"]:
            return  # a worker still starting: nothing counted yet
        code = slots["interface"]
        interface = layout["interfaces"][code - 1] if code else "unknown"
        for name in ("connections_total", "websockets_total", "bytes_in", "bytes_out"):
            self.counters[name] = self.counters.get(name, 0) + slots[name]
        for name in ("backpressure_waits", "backpressure_timeouts", "requests_rejected"):
            self.counters[name] = self.counters.get(name, 0) + slots[name]
        if with_gauges:
            for name in ("connections_open", "in_flight", "websockets_open"):
                self.gauges[name] = self.gauges.get(name, 0) + slots[name]
        start = len(layout["slots"])
        count = len(layout["buckets"]) + 1
        buckets = self.buckets.setdefault(interface, [0] * count)
        for i in range(count):
            buckets[i] += values[start + i]
        self.duration_us[interface] = self.duration_us.get(interface, 0) + slots["duration_sum_us"]
        start += count
        classes = layout["classes"]
        for m, method in enumerate(layout["methods"]):
            for c, status in enumerate(classes):
                n = values[start + m * len(classes) + c]
                if n:
                    key = (interface, method, status)
                    self.requests[key] = self.requests.get(key, 0) + n


@dataclass
class Scrape:
    totals: Totals
    #: (role, pid) of every process of the server.
    processes: list[tuple[str, int]]
    workers: int
    #: Workers started to replace another, by reason.
    restarts: dict[str, int]


def rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class Collector:
    """A `prometheus_client` collector over what `scrape()` returns."""

    def __init__(self, scrape: Callable[[], Scrape]):
        self.scrape = scrape

    def collect(self) -> Iterable:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        got = self.scrape()
        totals = got.totals
        layout = _layout()
        requests = CounterMetricFamily(
            "diorite_requests_handled",
            "Requests answered, by interface, method and status class",
            labels=("interface", "method", "status"),
        )
        for (interface, method, status), n in sorted(totals.requests.items()):
            requests.add_metric((interface, method, status), n)
        yield requests
        histogram = HistogramMetricFamily(
            "diorite_request_duration_seconds",
            "Time from a request's head to the end of its response",
            labels=("interface",),
        )
        bounds = [*(repr(b) for b in layout["buckets"]), "+Inf"]
        for interface, counts in sorted(totals.buckets.items()):
            cumulative, running = [], 0
            for bound, n in zip(bounds, counts, strict=True):
                running += n
                cumulative.append((bound, running))
            histogram.add_metric(
                (interface,), cumulative, totals.duration_us.get(interface, 0) / 1e6
            )
        yield histogram
        gauges = (
            ("diorite_requests_in_flight", "Requests being answered", "in_flight"),
            ("diorite_connections_active", "Client connections open", "connections_open"),
            ("diorite_websockets_open", "Websocket sessions open", "websockets_open"),
        )
        for name, doc, key in gauges:
            yield GaugeMetricFamily(name, doc, value=totals.gauges.get(key, 0))
        counters = (
            ("diorite_connections_handled", "Client connections accepted", "connections_total"),
            ("diorite_websockets_handled", "Websocket sessions accepted", "websockets_total"),
            ("diorite_received_bytes", "Bytes read from clients' sockets", "bytes_in"),
            ("diorite_sent_bytes", "Bytes written to clients' sockets", "bytes_out"),
            (
                "diorite_backpressure_waits",
                "Requests that waited for a --backpressure place",
                "backpressure_waits",
            ),
            (
                "diorite_backpressure_timeouts",
                "Requests answered 503 after waiting --backpressure-timeout for a place",
                "backpressure_timeouts",
            ),
            (
                "diorite_requests_rejected",
                "Requests refused before the app: a malformed or oversized head, "
                "or one not read in time",
                "requests_rejected",
            ),
        )
        for name, doc, key in counters:
            yield CounterMetricFamily(name, doc, value=totals.counters.get(key, 0))
        yield GaugeMetricFamily("diorite_workers", "Worker processes running", value=got.workers)
        respawns = CounterMetricFamily(
            "diorite_workers_respawns",
            "Workers started to replace another, by reason",
            labels=("reason",),
        )
        for reason in RESPAWN_REASONS:
            respawns.add_metric((reason,), got.restarts.get(reason, 0))
        yield respawns
        rss = GaugeMetricFamily(
            "diorite_process_resident_memory_bytes",
            "Resident memory of each process of the server",
            labels=("process", "pid"),
        )
        for role, pid in got.processes:
            rss.add_metric((role, str(pid)), rss_bytes(pid))
        yield rss


def health(beats: list[tuple[int, int]], stale: float = HEALTH_STALE) -> tuple[bool, str]:
    """`beats`: (pid, last heartbeat in ms) of every live worker. Healthy
    when there is one and each has beaten within `stale` seconds."""
    if not beats:
        return False, "no worker is running\n"
    now = monotonic_ms()
    late = [
        f"worker {pid}: event loop not seen for {(now - beat) / 1000:.1f}s\n"
        for pid, beat in beats
        if beat == 0 or now - beat > stale * 1000
    ]
    if late:
        return False, "".join(late)
    return True, "ok\n"


class MetricsServer:
    """`/metrics` and `/health` on a thread of their own (never the event
    loop: a hung loop must still get a 503)."""

    def __init__(
        self,
        host: str,
        port: int,
        scrape: Callable[[], Scrape],
        beats: Callable[[], list[tuple[int, int]]],
        stale: float = HEALTH_STALE,
    ):
        from prometheus_client import CollectorRegistry
        from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

        registry = CollectorRegistry(auto_describe=False)
        registry.register(Collector(scrape))

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    status, kind, body = 200, CONTENT_TYPE_LATEST, generate_latest(registry)
                elif path == "/health":
                    ok, text = health(beats(), stale)
                    status, kind, body = (200 if ok else 503), "text/plain", text.encode()
                else:
                    status, kind, body = 404, "text/plain", b"not found: /metrics or /health\n"
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:  # scrapes are not logged
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            address_family = _family(host)

        self.server = Server((host, port), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, name="diorite-metrics", daemon=True
        )

    @property
    def address(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{f'[{host}]' if ':' in host else host}:{port}"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _family(host: str):
    import socket

    return socket.AF_INET6 if ":" in host else socket.AF_INET


def available() -> bool:
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        return False
    return True
