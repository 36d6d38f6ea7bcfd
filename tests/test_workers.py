"""The supervisor: several workers on one socket, replacement, signals."""

import os
import signal
import time

import httpx
from conftest import answers, run_cli, send_before_stop
from test_ownership import wait_for

WSGI = ("--interface", "wsgi")


# A fresh connection for each request, so requests spread over the
# workers. One client for all of them: `httpx.get` builds a client, and its
# TLS context, each time (25 ms).
FRESH = httpx.Client(limits=httpx.Limits(max_keepalive_connections=0), timeout=10)


def get_pid(server, path="/"):
    r = FRESH.get(server.url + path, headers={"Connection": "close"})
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
    # The server went on, but its exit status reports the failure.
    server.check_log = False
    assert server.stop() == 1
    server.assert_clean_log()


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


def test_max_rss_takes_several_measurements_when_asked(serve):
    server = serve(
        "pid_app:app",
        *WSGI,
        "--workers",
        "2",
        "--workers-max-rss",
        "150",
        "--rss-samples",
        "3",
        "--rss-sample-interval",
        "300ms",
    )
    assert wait_for(lambda: server.log().count("is ready") == 2)
    fat = get_pid(server, path="/alloc")
    expected = f"replacing worker {fat}: memory above 150 MiB in 3 measurements in a row"
    assert wait_for(lambda: expected in server.log())
    assert wait_for(lambda: f"worker {fat} stopped" in server.log())


def test_workers_lifetime(serve):
    server = serve("pid_app:app", *WSGI, "--workers", "2", "--workers-lifetime", "2")
    assert wait_for(lambda: server.log().count("is ready") == 2)
    first = worker_pids(server, tries=10)
    assert wait_for(lambda: server.log().count("lifetime of 2.0s reached") >= 2, timeout=30)
    assert wait_for(lambda: not (first & worker_pids(server, tries=10)), timeout=30)


def test_max_requests_replaces_a_worker_without_losing_a_request(serve):
    # One worker: its successor must be ready before it stops, or requests
    # would wait or fail meanwhile.
    server = serve("pid_app:app", *WSGI, "--max-requests", "40", "--max-requests-jitter", "10")
    first = get_pid(server)
    served = {first: 1}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pid = get_pid(server)  # fails the test on any error or non-200
        served[pid] = served.get(pid, 0) + 1
        if len(served) == 2 and served[pid] >= 5:
            break
    assert len(served) == 2, served
    # Between 40 and 50 with its jitter, plus what it answered until the
    # supervisor looked and its successor was ready.
    assert served[first] >= 40, served
    log = server.log()
    replaced = [line for line in log.splitlines() if f"replacing worker {first}:" in line]
    assert len(replaced) == 1, log
    limit = int(replaced[0].rsplit(": ", 1)[1].split()[0])
    assert 40 <= limit <= 50, replaced
    assert replaced[0].endswith(f"{limit} requests served")
    assert wait_for(lambda: f"worker {first} stopped" in server.log())


def test_max_requests_of_zero_is_off(serve):
    server = serve("pid_app:app", *WSGI, "--max-requests", "0")
    assert len(worker_pids(server, tries=30)) == 1
    # No supervisor: the one worker is the server.
    assert "started worker" not in server.log()


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
    server = serve("wsgi_app:app", *WSGI, "--workers", "2")
    assert wait_for(lambda: server.log().count("is ready") == 2)
    clients = send_before_stop(server, "/sleep?s=1", 6)
    server.signal(signal.SIGTERM)
    assert answers(clients) == [b"slept"] * 6
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


def test_unix_domain_socket(serve, tmp_path):
    import stat

    path = tmp_path / "diorite.sock"
    server = serve(
        "wsgi_app:app", *WSGI, "--uds", str(path), "--uds-permissions", "660", ready=False
    )
    assert wait_for(lambda: "serving" in server.log() and path.exists())
    assert stat.S_IMODE(path.stat().st_mode) == 0o660
    transport = httpx.HTTPTransport(uds=str(path))
    with httpx.Client(transport=transport) as client:
        assert client.get("http://diorite/").text == "Hello, world!"
        env = client.get("http://diorite/environ").json()
    assert "REMOTE_ADDR" not in env
    server.stop()
    assert not path.exists()


def test_unix_domain_socket_with_workers(serve, tmp_path):
    path = tmp_path / "w.sock"
    server = serve("asgi_app:app", "--workers", "2", "--uds", str(path), ready=False)
    assert wait_for(lambda: server.log().count("is ready") == 2)
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(path))) as client:
        assert client.get("http://diorite/").text == "Hello, world!"


def test_env_files_and_process_name(serve, tmp_path):
    env_file = tmp_path / "app.env"
    env_file.write_text("GREETING_FROM_ENV=hello from dotenv\nexport SECOND=2\n")
    server = serve(
        "env_app:app",
        *WSGI,
        "--env-files",
        str(env_file),
        "--process-name",
        "diorite-test",
        env={"SECOND": "from the real environment"},
    )
    data = httpx.get(server.url + "/").json()
    assert data["GREETING_FROM_ENV"] == "hello from dotenv"
    assert data["SECOND"] == "from the real environment"  # the environment wins
    with open(f"/proc/{server.proc.pid}/comm") as f:
        assert f.read().strip().startswith("diorite-test")


def test_missing_env_file_is_a_clear_error():
    result = run_cli("wsgi_app:app", "--env-files", "/nonexistent.env", "--port", "0")
    assert result.returncode == 2
    assert "--env-files" in result.stderr and len(result.stderr.strip().splitlines()) == 1


RELOAD_SOURCE = (
    "def app(environ, start_response):\n"
    "    start_response('200 OK', [])\n"
    "    return [b'version %d']\n"
)


def serve_reloading(serve, tmp_path, *args):
    """A WSGI app at version 1 in its own directory, served with --reload."""
    app_dir = tmp_path / "proj"
    app_dir.mkdir()
    module = app_dir / "reload_app.py"
    module.write_text(RELOAD_SOURCE % 1)
    server = serve(
        "reload_app:app",
        *WSGI,
        "--reload",
        "--reload-paths",
        str(app_dir),
        "--working-dir",
        str(app_dir),
        *args,
    )
    assert wait_for(lambda: server.log().count("is ready") == 1)
    return server, module


def test_reload_keeps_old_code_when_new_code_breaks(serve, tmp_path):
    server, module = serve_reloading(serve, tmp_path)
    source = RELOAD_SOURCE
    assert httpx.get(server.url + "/").text == "version 1"
    module.write_text(source % 2)
    assert wait_for(lambda: httpx.get(server.url + "/").text == "version 2", timeout=20)
    module.write_text("this is not python\n")
    assert wait_for(lambda: "the new code failed to start" in server.log(), timeout=20)
    assert httpx.get(server.url + "/").text == "version 2"
    module.write_text(source % 3)
    assert wait_for(lambda: httpx.get(server.url + "/").text == "version 3", timeout=20)


def test_reload_ignores_the_dirs_and_paths_it_is_told_to(serve, tmp_path):
    app_dir = tmp_path / "proj"
    server, module = serve_reloading(
        serve,
        tmp_path,
        "--reload-ignore-dirs",
        "generated",
        "--reload-ignore-paths",
        str(app_dir / "cache"),
        "--reload-tick",
        "100",
    )
    (app_dir / "generated").mkdir()
    (app_dir / "cache").mkdir()
    (app_dir / "generated" / "out.py").write_text("x = 1\n")
    (app_dir / "cache" / "data.txt").write_text("cached\n")
    time.sleep(3)  # watchfiles reports within its debounce (1.6 s)
    assert "changes in" not in server.log()
    module.write_text(RELOAD_SOURCE % 2)
    assert wait_for(lambda: httpx.get(server.url + "/").text == "version 2", timeout=20)
    assert "changes in" in server.log()


def test_python_api_server_object_and_embedding(tmp_path):
    import subprocess
    import sys

    from conftest import APPS, ROOT, free_port

    port = free_port()
    script = tmp_path / "embed.py"
    script.write_text(
        "import asyncio, httpx, diorite\n"
        "async def app(scope, receive, send):\n"
        "    if scope['type'] != 'http': return\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "    await send({'type': 'http.response.body', 'body': b'embedded'})\n"
        "async def main():\n"
        f"    server = asyncio.create_task(diorite.serve(app, port={port}, log_enabled=False))\n"
        "    async with httpx.AsyncClient() as client:\n"
        "        for _ in range(100):\n"
        "            try:\n"
        f"                r = await client.get('http://127.0.0.1:{port}/')\n"
        "                break\n"
        "            except httpx.ConnectError:\n"
        "                await asyncio.sleep(0.05)\n"
        "    print(r.text)\n"
        "    server.cancel()\n"
        "    try:\n"
        "        await server\n"
        "    except asyncio.CancelledError:\n"
        "        print('stopped cleanly')\n"
        "asyncio.run(main())\n"
    )
    # An inherited PYTHONPATH goes on last (a build installed elsewhere).
    path = [str(APPS), str(ROOT), os.environ.get("PYTHONPATH", "")]
    env = {"PYTHONPATH": os.pathsep.join(path), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.stdout.split() == ["embedded", "stopped", "cleanly"], result.stderr

    port = free_port()
    runner = tmp_path / "api.py"
    runner.write_text(
        "import diorite, wsgi_app\n"
        f"raise SystemExit(diorite.Server(wsgi_app.app, interface='wsgi', port={port}).serve())\n"
    )
    proc = subprocess.Popen([sys.executable, str(runner)], env=env, stderr=subprocess.PIPE)
    try:
        assert wait_for(lambda: _answers(port))
        assert httpx.get(f"http://127.0.0.1:{port}/").text == "Hello, world!"
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0


def _answers(port):
    try:
        httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
        return True
    except httpx.HTTPError:
        return False
