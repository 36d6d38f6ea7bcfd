"""`--log-config`: a dictConfig (JSON, YAML) or a fileConfig `.ini`,
applied in the single process, the supervisor and every worker, with
`--log-level` and `--no-log` on top."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from conftest import run_cli

#: JSON lines on stderr for diorite and diorite.access.
JSON_CONFIG = {
    "version": 1,
    "formatters": {"json": {"()": "diorite.logs.JsonFormatter"}},
    "handlers": {
        "out": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    },
    "loggers": {
        "diorite": {"handlers": ["out"], "level": "INFO", "propagate": False},
        "diorite.access": {"handlers": ["out"], "level": "INFO", "propagate": False},
    },
}


def json_lines(server) -> list[dict]:
    """Every line of the server's output, each of which must be JSON."""
    entries = []
    for line in server.log().splitlines():
        if line.strip():
            entries.append(json.loads(line))
    return entries


def wait_for(server, predicate, timeout: float = 15.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        entries = json_lines(server)
        if predicate(entries):
            return entries
        time.sleep(0.1)
    raise AssertionError(server.log())


def test_json_lines_single_process(serve, tmp_path):
    path = tmp_path / "log.json"
    path.write_text(json.dumps(JSON_CONFIG))
    server = serve("asgi_app:app", "--log-config", str(path), "--access-log")
    httpx.get(f"{server.url}/?q=1")
    entries = wait_for(server, lambda e: any(x["logger"] == "diorite.access" for x in e))
    access = next(e for e in entries if e["logger"] == "diorite.access")
    assert access["status"] == 200 and access["query_string"] == "q=1"
    assert access["message"].endswith(f"{access['dt_ms']:.3f}")
    assert any(e["logger"] == "diorite" and e["level"] == "INFO" for e in entries)


def test_json_lines_in_the_supervisor_and_every_worker(serve, tmp_path):
    path = tmp_path / "log.json"
    path.write_text(json.dumps(JSON_CONFIG))
    server = serve("asgi_app:app", "--workers", "2", "--log-config", str(path), "--access-log")
    for _ in range(20):
        httpx.get(f"{server.url}/", headers={"connection": "close"})

    def done(entries):
        return sum(e["logger"] == "diorite.access" for e in entries) == 20 and (
            sum("is ready" in e["message"] for e in entries) == 2
        )

    entries = wait_for(server, done)
    processes = {e["process"] for e in entries}
    started = [e for e in entries if e["message"].startswith("started worker")]
    supervisor = {e["process"] for e in started}
    workers = {int(e["message"].split()[2]) for e in started}
    assert len(supervisor) == 1 and len(workers) == 2
    # Lines from the workers themselves (not only the supervisor's).
    assert workers & processes
    server.stop()
    json_lines(server)  # the lines written while stopping are JSON too


def test_yaml(serve, tmp_path):
    yaml = pytest.importorskip("yaml")
    path = tmp_path / "log.yaml"
    path.write_text(yaml.safe_dump(JSON_CONFIG))
    server = serve("asgi_app:app", "--log-config", str(path), "--access-log")
    httpx.get(f"{server.url}/")
    wait_for(server, lambda e: any(x["logger"] == "diorite.access" for x in e))


def test_ini(serve, tmp_path):
    path = tmp_path / "log.ini"
    path.write_text(
        "[loggers]\nkeys=root,diorite,access\n\n"
        "[handlers]\nkeys=err\n\n"
        "[formatters]\nkeys=plain\n\n"
        "[logger_root]\nlevel=WARNING\nhandlers=\n\n"
        "[logger_diorite]\nlevel=INFO\nhandlers=err\nqualname=diorite\npropagate=0\n\n"
        "[logger_access]\nlevel=INFO\nhandlers=err\nqualname=diorite.access\npropagate=0\n\n"
        "[handler_err]\nclass=StreamHandler\nformatter=plain\nargs=(sys.stderr,)\n\n"
        "[formatter_plain]\nformat=INI %(name)s %(message)s\n"
    )
    server = serve("asgi_app:app", "--log-config", str(path), "--access-log")
    httpx.get(f"{server.url}/")
    log = server.wait_log("INI diorite.access [")
    lines = [line for line in log.splitlines() if line.strip()]
    assert all(line.startswith("INI diorite") for line in lines), log


def test_log_level_goes_on_top_of_the_file(serve, tmp_path):
    quiet = json.loads(json.dumps(JSON_CONFIG))
    quiet["loggers"]["diorite"]["level"] = "WARNING"
    path = tmp_path / "log.json"
    path.write_text(json.dumps(quiet))
    server = serve("asgi_app:app", "--log-config", str(path))
    time.sleep(0.5)
    assert json_lines(server) == []
    loud = serve("asgi_app:app", "--log-config", str(path), "--log-level", "debug")
    wait_for(loud, lambda e: any(x["level"] == "INFO" for x in e))


def test_no_log_still_silences(serve, tmp_path):
    path = tmp_path / "log.json"
    path.write_text(json.dumps(JSON_CONFIG))
    server = serve("asgi_app:app", "--log-config", str(path), "--no-log")
    httpx.get(f"{server.url}/")
    server.stop()
    assert server.log().strip() == ""


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("bad.json", "{not json"),
        ("list.json", "[1, 2]"),
        ("handler.json", json.dumps({"version": 1, "handlers": {"h": {"class": "no.Such"}}})),
        ("missing.ini", None),
        ("bad.ini", "[loggers]\nkeys=nothing\n"),
    ],
)
def test_a_bad_file_is_one_line_and_exit_2(tmp_path, name, content):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    done = run_cli("asgi_app:app", "--log-config", str(path), cwd=tmp_path)
    assert done.returncode == 2, done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "--log-config" in lines[0], done.stderr


def test_no_log_leaves_the_access_log_to_access_log(serve):
    server = serve("asgi_app:app", "--no-log", "--access-log")
    httpx.get(f"{server.url}/")
    log = server.wait_log('"GET / HTTP/1.1" 200')
    assert "INFO diorite" not in log, log
