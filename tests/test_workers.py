"""The supervisor: several workers on one socket, replacement, signals."""

import os
import signal
import time

import httpx
from conftest import run_cli
from test_ownership import wait_for

WSGI = ("--interface", "wsgi")


def get_pid(server, client=None, path="/"):
    # A fresh connection each time, so requests spread over the workers.
    r = httpx.get(server.url + path, headers={"Connection": "close"}, timeout=10)
    assert r.status_code == 200
    return int(r.text)


def worker_pids(server, tries=60):
    pids = set()
    for _ in range(tries):
        pids.add(get_pid(server))
    return pids


def test_two_workers_share_the_socket(serve, tmp_path):
    pid_file = tmp_path / "diorite.pid"
    server = serve("pid_app:app", *WSGI, "--workers", "2", "--pid-file", str(pid_file))
    assert wait_for(lambda: server.log().count("is ready") == 2)
    assert int(pid_file.read_text()) == server.proc.pid
    pids = worker_pids(server)
    assert server.proc.pid not in pids
    assert len(pids) >= 1
    server.stop()
    assert not pid_file.exists()


def test_killed_worker_is_replaced_without_refusing_connections(serve):
    server = serve(
        "pid_app:app",
        *WSGI,
        "--workers",
        "2",
        "--respawn-failed-workers",
        "--respawn-interval",
        "0.2",
    )
    assert wait_for(lambda: server.log().count("is ready") == 2)
    victim = get_pid(server)
    errors = 0
    seen = set()
    for i in range(200):
        if i == 20:
            os.kill(victim, signal.SIGKILL)
        try:
            seen.add(get_pid(server))
        except httpx.HTTPError:
            errors += 1
    assert errors == 0
    assert wait_for(lambda: "is ready" in server.log().split("died unexpectedly")[-1])
    log = server.log()
    assert f"worker {victim} died unexpectedly (signal SIGKILL)" in log
    assert victim not in worker_pids(server)


def test_sighup_replaces_workers_without_losing_requests(serve):
    server = serve("pid_app:app", *WSGI, "--workers", "2")
    assert wait_for(lambda: server.log().count("is ready") == 2)
    before = worker_pids(server)
    server.signal(signal.SIGHUP)
    errors = 0
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and server.log().count("stopped (exit code 0)") < 2:
        try:
            get_pid(server)
        except httpx.HTTPError:
            errors += 1
    assert errors == 0
    after = worker_pids(server)
    assert not (before & after)


def test_worker_over_max_rss_is_replaced(serve):
    server = serve("pid_app:app", *WSGI, "--workers", "2", "--workers-max-rss", "150")
    assert wait_for(lambda: server.log().count("is ready") == 2)
    fat = get_pid(server, path="/alloc")
    assert wait_for(lambda: f"replacing worker {fat}: memory above 150 MiB" in server.log())
    assert wait_for(lambda: f"worker {fat} stopped" in server.log())
    assert fat not in worker_pids(server)


def test_workers_lifetime(serve):
    server = serve("pid_app:app", *WSGI, "--workers", "2", "--workers-lifetime", "2")
    assert wait_for(lambda: server.log().count("is ready") == 2)
    first = worker_pids(server, tries=10)
    assert wait_for(lambda: server.log().count("lifetime of 2.0s reached") >= 2, timeout=30)
    assert wait_for(lambda: not (first & worker_pids(server, tries=10)), timeout=30)


def test_dead_worker_without_respawn_stops_the_server(serve):
    server = serve("pid_app:app", *WSGI, "--workers", "2")
    server.check_log = False
    assert wait_for(lambda: server.log().count("is ready") == 2)
    os.kill(get_pid(server), signal.SIGKILL)
    assert server.proc.wait(30) == 1
    assert "--respawn-failed-workers" in server.log()


def test_crash_loop_at_start_up_ends_with_an_error():
    result = run_cli(
        "broken_app:app",
        "--workers",
        "2",
        "--respawn-failed-workers",
        "--respawn-interval",
        "0.1",
        "--port",
        "0",
        timeout=60,
    )
    assert result.returncode == 1
    assert "keep dying during start-up" in result.stderr


def test_graceful_stop_finishes_in_flight_requests(serve):
    import concurrent.futures

    server = serve("wsgi_app:app", *WSGI, "--workers", "2")
    assert wait_for(lambda: server.log().count("is ready") == 2)
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(httpx.get, server.url + "/sleep?s=1", timeout=10) for _ in range(6)]
        time.sleep(0.4)
        server.signal(signal.SIGTERM)
        assert [f.result().text for f in futures] == ["slept"] * 6
    assert server.proc.wait(30) == 0


def test_kill_timeout_kills_stuck_workers(serve):
    import threading

    server = serve(
        "wsgi_app:app",
        *WSGI,
        "--workers",
        "2",
        "--workers-kill-timeout",
        "1",
        "--shutdown-timeout",
        "60",
    )
    server.check_log = False
    assert wait_for(lambda: server.log().count("is ready") == 2)
    # A request stuck in the app keeps its worker from stopping.
    threading.Thread(target=lambda: _swallow(server), daemon=True).start()
    time.sleep(0.5)
    started = time.monotonic()
    server.signal(signal.SIGTERM)
    server.proc.wait(30)
    assert time.monotonic() - started < 10
    assert "did not stop in time; killing it" in server.log()


def _swallow(server):
    try:
        httpx.get(server.url + "/sleep?s=30", timeout=30)
    except httpx.HTTPError:
        pass
