"""`--metrics`, `/health` and `--workers-loop-timeout`, scraped from the real
server with prometheus_client's own text parser."""

from __future__ import annotations

import asyncio
import signal
import socket
import threading
import time

import httpx
import pytest
import websockets
from conftest import free_port, run_cli
from prometheus_client.parser import text_string_to_metric_families
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect


def scrape(port: int) -> dict[str, list]:
    """Every sample, by sample name: a list of (labels, value)."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    samples: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def value(samples, name: str, **labels) -> float:
    """The sum of `name`'s samples whose labels include `labels`."""
    return sum(
        v for got, v in samples.get(name, []) if all(got.get(k) == x for k, x in labels.items())
    )


def hang(url: str) -> None:
    """Sends a request that blocks a worker's loop, on a thread; the
    worker is killed under it."""

    def run() -> None:
        try:
            httpx.get(url, timeout=60)
        except httpx.HTTPError:
            pass

    threading.Thread(target=run, daemon=True).start()


def start(serve, app: str, *args: str):
    port = free_port()
    server = serve(app, "--metrics", "--metrics-port", str(port), *args)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.05)
    return server, port


def wait_healthy(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200:
            return
        time.sleep(0.1)
    raise AssertionError("never healthy")


async def ws_echo(url: str, count: int) -> None:
    async with websockets.connect(url) as ws:
        for i in range(count):
            await ws.send(f"m{i}")
            assert await ws.recv() == f"m{i}"


@pytest.mark.parametrize("workers", [1, 2])
def test_asgi_requests_counted_by_method_and_status_class(serve, workers):
    server, port = start(serve, "metrics_app:app", "--workers", str(workers))
    wait_healthy(port)
    with httpx.Client(base_url=server.url) as client:
        for _ in range(5):
            assert client.get("/").status_code == 200
        for _ in range(3):
            assert client.post("/", content=b"x" * 1000).status_code == 200
        assert client.get("/missing").status_code == 404
        assert client.get("/missing").status_code == 404
        assert client.get("/fail").status_code == 500
    asyncio.run(ws_echo(f"ws://127.0.0.1:{server.port}/ws", 3))
    time.sleep(0.3)  # the websocket's connection is closed on the server side
    samples = scrape(port)
    assert value(samples, "diorite_requests_handled_total", method="GET", status="2xx") == 5
    assert value(samples, "diorite_requests_handled_total", method="POST", status="2xx") == 3
    assert value(samples, "diorite_requests_handled_total", method="GET", status="4xx") == 2
    assert value(samples, "diorite_requests_handled_total", method="GET", status="5xx") == 1
    # The websocket handshake: a GET answered 101.
    assert value(samples, "diorite_requests_handled_total", method="GET", status="1xx") == 1
    assert value(samples, "diorite_requests_handled_total", interface="asgi") == 12
    # Histogram: +Inf and _count hold every request, buckets never decrease.
    assert value(samples, "diorite_request_duration_seconds_count") == 12
    buckets = sorted(
        (float(labels["le"]), v) for labels, v in samples["diorite_request_duration_seconds_bucket"]
    )
    counts = [v for _, v in buckets]
    assert counts == sorted(counts) and counts[-1] == 12
    assert value(samples, "diorite_request_duration_seconds_sum") > 0
    assert value(samples, "diorite_websockets_handled_total") == 1
    assert value(samples, "diorite_websockets_open") == 0
    assert value(samples, "diorite_received_bytes_total") > 2000
    assert value(samples, "diorite_sent_bytes_total") > 5 * len(b"hello")
    assert value(samples, "diorite_requests_in_flight") == 0
    assert value(samples, "diorite_workers") == workers
    # One per worker and one for the supervisor, if any.
    rss = samples["diorite_process_resident_memory_bytes"]
    assert len(rss) == workers + (1 if workers > 1 else 0)
    assert all(v > 1e6 for _, v in rss)


@pytest.mark.parametrize(
    ("app", "interface", "fail"),
    [("wsgi_app:app", "wsgi", "/raise"), ("rsgi_app:app", "rsgi", "/raise")],
)
def test_wsgi_and_rsgi_requests_are_labelled_with_their_interface(serve, app, interface, fail):
    server, port = start(serve, app, "--workers", "2")
    server.check_log = False  # the app's failures are logged on purpose
    wait_healthy(port)
    with httpx.Client(base_url=server.url) as client:
        for _ in range(4):
            assert client.get("/").status_code == 200
        assert client.get(fail).status_code == 500
    samples = scrape(port)
    assert value(samples, "diorite_requests_handled_total", interface=interface, status="2xx") == 4
    assert value(samples, "diorite_requests_handled_total", interface=interface, status="5xx") == 1
    assert value(samples, "diorite_request_duration_seconds_count", interface=interface) == 5


def test_in_flight_connections_and_websockets_open_while_they_run(serve):
    server, port = start(serve, "metrics_app:app")
    done = []
    slow = threading.Thread(target=lambda: done.append(httpx.get(f"{server.url}/slow?2").text))
    slow.start()
    idle = socket.create_connection((server.host, server.port))

    async def with_websocket():
        async with websockets.connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
            await ws.send("hi")
            await ws.recv()
            await asyncio.sleep(0.3)
            return scrape(port)

    samples = asyncio.run(with_websocket())
    assert value(samples, "diorite_requests_in_flight") == 1
    assert value(samples, "diorite_websockets_open") == 1
    # The slow request's, the idle one, the websocket's.
    assert value(samples, "diorite_connections_active") == 3
    slow.join()
    idle.close()
    assert done == ["hello"]
    time.sleep(0.3)
    samples = scrape(port)
    assert value(samples, "diorite_requests_in_flight") == 0
    assert value(samples, "diorite_connections_active") == 0
    assert value(samples, "diorite_websockets_open") == 0


def test_requests_that_wait_for_a_backpressure_place_are_counted(serve):
    server, port = start(serve, "metrics_app:app", "--backpressure", "1")
    threads = [
        threading.Thread(target=httpx.get, args=(f"{server.url}/slow?0.5",), kwargs={"timeout": 10})
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    samples = scrape(port)
    assert value(samples, "diorite_backpressure_waits_total") == 2
    assert value(samples, "diorite_requests_handled_total", status="2xx") == 3


def test_requests_answered_503_for_want_of_a_backpressure_place_are_counted(serve):
    server, port = start(
        serve, "metrics_app:app", "--backpressure", "1", "--backpressure-timeout", "0.2"
    )
    holder = threading.Thread(
        target=httpx.get, args=(f"{server.url}/slow?3",), kwargs={"timeout": 10}
    )
    holder.start()
    time.sleep(0.3)
    statuses = [httpx.get(f"{server.url}/", timeout=10).status_code for _ in range(2)]
    # A websocket handshake needs a place too.
    ws_url = server.url.replace("http://", "ws://") + "/ws"
    with pytest.raises(InvalidStatus) as refused, connect(ws_url, open_timeout=10):
        pass
    assert holder.is_alive()
    holder.join()
    assert statuses == [503, 503]
    assert refused.value.response.status_code == 503
    samples = scrape(port)
    assert value(samples, "diorite_backpressure_waits_total") == 3
    assert value(samples, "diorite_backpressure_timeouts_total") == 3
    assert value(samples, "diorite_requests_handled_total", status="5xx") == 3


def test_requests_refused_before_the_app_are_counted_and_logged_at_debug(serve):
    server, port = start(
        serve,
        "metrics_app:app",
        "--http1-buffer-size",
        "8192",
        "--http1-header-read-timeout",
        "500",
        "--log-level",
        "debug",
    )
    assert server.raw(b"NOT HTTP AT ALL\r\n\r\n").startswith(b"HTTP/1.1 400")
    big = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 10_000 + b"\r\n\r\n"
    assert server.raw(big).startswith(b"HTTP/1.1 431")
    # Part of a head, then silence: cut at the header-read timeout.
    assert server.raw(b"GET / HTTP/1.1\r\nHost: x\r\n") == b""
    # A keep-alive connection on which nothing more arrives is closed by
    # the same timer (shorter here than the keep-alive timeout): that
    # refused nothing.
    with socket.create_connection((server.host, server.port), timeout=10) as idle:
        idle.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        while chunk := idle.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200")
    samples = scrape(port)
    assert value(samples, "diorite_requests_rejected_total") == 3
    assert value(samples, "diorite_requests_handled_total") == 1
    deadline = time.monotonic() + 10
    while True:
        log = server.log()
        refusals = [line for line in log.splitlines() if "request refused before the app" in line]
        if len(refusals) >= 3 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(refusals) == 3, log
    assert all("127.0.0.1:" in line and "DEBUG" in line for line in refusals), refusals


def test_health_is_503_while_the_event_loop_is_blocked(serve):
    server, port = start(serve, "metrics_app:app")
    health = f"http://127.0.0.1:{port}/health"
    assert httpx.get(health).status_code == 200
    blocked = threading.Thread(
        target=httpx.get, args=(f"{server.url}/block?5",), kwargs={"timeout": 20}
    )
    blocked.start()
    time.sleep(3)
    answer = httpx.get(health, timeout=5)
    assert answer.status_code == 503, answer.text
    assert "event loop not seen" in answer.text
    blocked.join()
    wait_healthy(port, timeout=5)
    assert httpx.get(f"http://127.0.0.1:{port}/nothing").status_code == 404


def test_a_worker_with_a_hung_loop_is_replaced_with_its_stack_logged(serve):
    server, port = start(serve, "metrics_app:app", "--workers", "2", "--workers-loop-timeout", "2")
    wait_healthy(port)
    # Hangs one worker's loop for far longer than the timeout.
    hang(f"{server.url}/block?60")
    log = server.wait_log("its threads' stacks follow", timeout=15)
    log = server.wait_log("with the hung event loop is gone", timeout=15)
    # faulthandler's dump of the hung thread, in the same log.
    assert "Current thread" in log or "Thread 0x" in log, log
    assert "metrics_app.py" in log and "line 33 in app" in log, log
    server.wait_log("started worker", timeout=5)
    wait_healthy(port)
    samples = scrape(port)
    assert value(samples, "diorite_workers_respawns_total") == 1
    assert value(samples, "diorite_workers_respawns_total", reason="hung") == 1
    assert value(samples, "diorite_workers") == 2
    assert httpx.get(server.url).status_code == 200


def test_workers_replaced_on_sighup_are_counted_by_reason(serve):
    server, port = start(serve, "metrics_app:app", "--workers", "2")
    wait_healthy(port)
    samples = scrape(port)
    reasons = {labels["reason"] for labels, _ in samples["diorite_workers_respawns_total"]}
    assert reasons == {"died", "hung", "lifetime", "max_rss", "max_requests", "sighup", "reload"}
    assert value(samples, "diorite_workers_respawns_total") == 0
    server.signal(signal.SIGHUP)
    deadline = time.monotonic() + 30
    while server.log().count("started worker") < 4:
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.1)
    wait_healthy(port)
    samples = scrape(port)
    assert value(samples, "diorite_workers_respawns_total", reason="sighup") == 2
    assert value(samples, "diorite_workers_respawns_total") == 2


def test_counters_of_a_replaced_worker_stay_in_the_sums(serve):
    server, port = start(serve, "metrics_app:app", "--workers", "2", "--workers-loop-timeout", "2")
    wait_healthy(port)
    with httpx.Client(base_url=server.url) as client:
        for _ in range(6):
            client.get("/")
    before = value(scrape(port), "diorite_requests_handled_total")
    hang(f"{server.url}/block?60")
    server.wait_log("with the hung event loop is gone", timeout=20)
    wait_healthy(port)
    # The hung request itself is never answered; the others are kept.
    assert value(scrape(port), "diorite_requests_handled_total") >= before == 6


def test_bad_metrics_settings_are_one_line_and_status_2():
    for args, named in [
        (["--metrics-address", "not-an-ip"], "--metrics-address"),
        (["--metrics-port", "70000"], "--metrics-port"),
        (["--workers-loop-timeout", "0"], "--workers-loop-timeout"),
    ]:
        done = run_cli(*args, "metrics_app:app")
        assert done.returncode == 2, done
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and named in lines[0], done.stderr


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_metrics_port_in_use_stops_start_up_with_one_line(workers):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        done = run_cli(
            "--port",
            str(free_port()),
            "--workers",
            workers,
            "--metrics",
            "--metrics-port",
            str(busy),
            "metrics_app:app",
        )
    assert done.returncode == 1, done
    errors = [line for line in done.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and f"metrics address 127.0.0.1:{busy}" in errors[0], done.stderr
