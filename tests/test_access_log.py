"""The access log (`--access-log`, `--access-log-fmt`, `--access-logfile`):
one line per request, from every interface, static files and websockets,
with the status actually sent, through the `diorite.access` logger."""

from __future__ import annotations

import re
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from conftest import run_cli
from websockets.sync.client import connect

#: Every atom, separated by `|`, after a marker the other lines never have.
FMT = (
    "ACCESS|%(addr)s|%(time)s|%(method)s|%(path)s|%(query_string)s|%(protocol)s"
    "|%(status)d|%(rbl)d|%(dt_ms).3f|%(scheme)s|%(header{user-agent})s|%({x-trace}i)s|%(size)d"
)
FIELDS = "addr time method path query protocol status rbl dt_ms scheme agent trace size".split()
ON = ("--access-log", "--access-log-fmt", FMT)


def records(server) -> list[dict[str, str]]:
    found = []
    for line in server.log().splitlines():
        if line.startswith("ACCESS|"):
            found.append(dict(zip(FIELDS, line.split("|")[1:], strict=True)))
    return found


def wait_records(server, count: int, timeout: float = 15.0) -> list[dict[str, str]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = records(server)
        if len(found) >= count:
            return found
        time.sleep(0.05)
    raise AssertionError(f"expected {count} access lines, got:\n{server.log()}")


def test_every_atom(serve):
    server = serve("asgi_app:app", *ON)
    answer = httpx.get(
        f"{server.url}/?a=1&b=%20", headers={"user-agent": "ua/1.0", "x-trace": "t-42"}
    )
    assert answer.text == "Hello, world!"
    (line,) = wait_records(server, 1)
    assert line["addr"] == "127.0.0.1"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}", line["time"]), line
    assert line["method"] == "GET"
    assert line["path"] == "/"
    assert line["query"] == "a=1&b=%20"
    assert line["protocol"] == "HTTP/1.1"
    assert line["status"] == "200"
    assert line["rbl"] == line["size"] == "13"
    assert 0 <= float(line["dt_ms"]) < 5000
    assert line["scheme"] == "http"
    assert line["agent"] == "ua/1.0"
    assert line["trace"] == "t-42"


def test_a_missing_header_is_a_dash_and_http2_is_named(serve):
    server = serve("asgi_app:app", *ON)
    with httpx.Client(http1=False, http2=True) as client:
        assert client.get(f"{server.url}/").status_code == 200
    (line,) = wait_records(server, 1)
    assert line["protocol"] == "HTTP/2"
    assert line["trace"] == "-"


def test_granian_default_format(serve):
    server = serve("asgi_app:app", "--access-log")
    httpx.get(f"{server.url}/nowhere")
    log = server.wait_log('"GET /nowhere HTTP/1.1" 404')
    assert re.search(
        r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\] 127\.0\.0\.1 - "
        r'"GET /nowhere HTTP/1\.1" 404 \d+\.\d{3}$',
        log,
        re.M,
    ), log


def test_off_by_default(serve):
    server = serve("asgi_app:app")
    httpx.get(f"{server.url}/")
    time.sleep(0.5)
    assert '"GET / HTTP/1.1"' not in server.log()


@pytest.mark.parametrize(
    ("app", "interface", "missing"),
    [
        ("asgi_app:app", "asgi", 404),
        ("wsgi_app:app", "wsgi", 404),
        ("rsgi_app:app", "rsgi", 404),
    ],
)
def test_every_interface_logs_what_was_sent(serve, app, interface, missing):
    server = serve(app, "--interface", interface, *ON)
    assert httpx.get(f"{server.url}/").status_code == 200
    assert httpx.get(f"{server.url}/no-such-route").status_code == missing
    lines = wait_records(server, 2)
    assert [(r["path"], r["status"]) for r in lines] == [
        ("/", "200"),
        ("/no-such-route", str(missing)),
    ]


@pytest.mark.parametrize(
    ("app", "interface", "path"),
    [("asgi_app:app", "asgi", "/raise-before"), ("wsgi_app:app", "wsgi", "/raise")],
)
def test_an_app_exception_is_logged_as_500(serve, app, interface, path):
    server = serve(app, "--interface", interface, *ON)
    assert httpx.get(f"{server.url}{path}").status_code == 500
    (line,) = wait_records(server, 1)
    assert (line["path"], line["status"]) == (path, "500")


def test_static_files(serve, tmp_path):
    public = tmp_path / "public"
    public.mkdir()
    (public / "a.txt").write_bytes(b"x" * 1000)
    server = serve(
        "asgi_app:app", *ON, "--static-path-route", "/static", "--static-path-mount", str(public)
    )
    assert httpx.get(f"{server.url}/static/a.txt").content == b"x" * 1000
    assert httpx.get(f"{server.url}/static/none.txt").status_code == 404
    lines = wait_records(server, 2)
    assert [(r["path"], r["status"], r["size"]) for r in lines[:1]] == [
        ("/static/a.txt", "200", "1000")
    ]
    assert (lines[1]["path"], lines[1]["status"]) == ("/static/none.txt", "404")


def test_a_websocket_is_logged_as_101_at_the_handshake(serve):
    server = serve("ws_asgi_app:app", *ON)
    with connect(f"ws://127.0.0.1:{server.port}/echo") as ws:
        ws.send("hi")
        assert ws.recv() == "hi"
        (line,) = wait_records(server, 1)
    assert (line["method"], line["path"], line["status"]) == ("GET", "/echo", "101")


def test_a_client_gone_mid_stream_is_499(serve):
    server = serve("asgi_app:app", *ON)
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.sendall(b"GET /stream?n=100000&size=1000&delay=0.001 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
    (line,) = wait_records(server, 1)
    assert line["path"] == "/stream"
    assert line["status"] == "499"
    assert int(line["size"]) < 100000 * 1000


def test_a_complete_stream_keeps_its_status_and_counts_every_byte(serve):
    server = serve("asgi_app:app", *ON)
    assert len(httpx.get(f"{server.url}/stream?n=50&size=100").content) == 5000
    (line,) = wait_records(server, 1)
    assert (line["status"], line["size"]) == ("200", "5000")


def test_bodiless_answers_are_not_mistaken_for_a_client_gone(serve, tmp_path):
    public = tmp_path / "public"
    public.mkdir()
    (public / "a.txt").write_text("abc")
    server = serve(
        "asgi_app:app", *ON, "--static-path-route", "/static", "--static-path-mount", str(public)
    )
    assert httpx.head(f"{server.url}/").status_code == 200
    etag = httpx.get(f"{server.url}/static/a.txt").headers["etag"]
    again = httpx.get(f"{server.url}/static/a.txt", headers={"if-none-match": etag})
    assert again.status_code == 304
    lines = wait_records(server, 3)
    assert [(r["method"], r["status"]) for r in lines] == [
        ("HEAD", "200"),
        ("GET", "200"),
        ("GET", "304"),
    ]


def test_access_logfile_dash_writes_to_stdout(serve):
    server = serve("asgi_app:app", "--access-logfile", "-", "--access-log-fmt", FMT)
    httpx.get(f"{server.url}/")
    (line,) = wait_records(server, 1)
    assert line["status"] == "200"


def test_access_logfile_path(serve, tmp_path):
    path = tmp_path / "access.log"
    server = serve("asgi_app:app", "--access-logfile", str(path))
    httpx.get(f"{server.url}/")
    deadline = time.monotonic() + 10
    while '"GET / HTTP/1.1" 200' not in (path.read_text() if path.exists() else ""):
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.05)
    assert '"GET / HTTP/1.1" 200' not in server.log()


@pytest.mark.parametrize("interface", ["asgi", "wsgi"])
def test_many_requests_are_each_logged_once(serve, interface):
    app = "asgi_app:app" if interface == "asgi" else "wsgi_app:app"
    server = serve(app, "--interface", interface, *ON)
    count = 3000

    def run(part: int) -> None:
        with httpx.Client() as client:
            for i in range(part, count, 8):
                assert client.get(f"{server.url}/?i={i}").status_code == 200

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(run, range(8)))
    wait_records(server, count)
    time.sleep(0.3)
    seen = sorted(int(r["query"].removeprefix("i=")) for r in records(server))
    assert seen == list(range(count))


def test_workers_append_whole_lines_to_one_file(serve, tmp_path):
    # Each worker appends its batches to the same file (O_APPEND, one write
    # per batch): lines from two workers never cut into each other.
    path = tmp_path / "access.log"
    server = serve(
        "asgi_app:app", "--workers", "2", "--access-logfile", str(path), "--access-log-fmt", FMT
    )
    count = 3000

    def run(part: int) -> None:
        # A connection per request spreads them over both workers; one
        # client per thread, as a new one per request (`httpx.get`) spent
        # most of this test building TLS contexts it never used.
        with httpx.Client(limits=httpx.Limits(max_keepalive_connections=0)) as client:
            for i in range(part, count, 8):
                assert client.get(f"{server.url}/?i={i}").status_code == 200

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(run, range(8)))
    deadline = time.monotonic() + 15
    while len(lines := path.read_text().splitlines() if path.exists() else []) < count:
        assert time.monotonic() < deadline, f"{len(lines)} lines"
        time.sleep(0.05)
    seen = []
    for line in lines:
        fields = dict(zip(FIELDS, line.split("|")[1:], strict=True))
        assert line.startswith("ACCESS|") and fields["status"] == "200", line
        seen.append(int(fields["query"].removeprefix("i=")))
    assert sorted(seen) == list(range(count))


def test_a_bad_format_stops_start_up(tmp_path):
    for fmt, why in [
        ("%(status)d %(nope", "--access-log-fmt"),
        ("%(path)d", "--access-log-fmt"),
        ("%(stauts)d", "--access-log-fmt"),
        ("%(header{a b})s", "--access-log-fmt"),
    ]:
        done = run_cli("asgi_app:app", "--access-log", "--access-log-fmt", fmt, cwd=tmp_path)
        assert done.returncode == 2, done
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and why in lines[0], done.stderr


def test_lines_rendered_in_rust_match_pythons_percent(serve, tmp_path):
    """The default handler takes lines rendered in Rust; any other goes
    through `logging` and Python's `%`: both give the same line."""
    fmt = "R|%(status)d|%(status).1f|%(status)s|%(size)i|%(method)s|%(header{x-a})s|%({x-b}i)s|%%"
    config = tmp_path / "log.json"
    config.write_text(
        '{"version": 1, "handlers": {"h": {"class": "logging.StreamHandler", '
        '"stream": "ext://sys.stdout"}}, "loggers": {"diorite.access": '
        '{"handlers": ["h"], "level": "INFO", "propagate": false}}}'
    )
    lines = []
    for extra in ([], ["--log-config", str(config)]):
        server = serve("asgi_app:app", "--access-log", "--access-log-fmt", fmt, *extra)
        httpx.get(f"{server.url}/", headers={"x-a": "v a"})
        log = server.wait_log("R|")
        lines.append([line for line in log.splitlines() if line.startswith("R|")])
    assert lines[0] == lines[1] == ["R|200|200.0|200|13|GET|v a|-|%"]
