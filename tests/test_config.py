"""Settings from every source (flags, environment, config file, Python
API), the interface found from the app, and the commands of Granian,
Uvicorn and Gunicorn users run unchanged but for the program name."""

import json
import signal

import diorite
import httpx
import pytest
from conftest import answers, run_cli, send_before_stop
from diorite.cli import resolve


def printed(*args: str, env: dict | None = None, cwd=None) -> dict[str, tuple[str, str]]:
    """`--print-config` as {key: (value, source)}."""
    result = run_cli(*args, "--print-config", env=env, cwd=cwd)
    assert result.returncode == 0, result.stderr
    settings = {}
    for line in result.stdout.splitlines()[1:]:
        setting, _, source = line.partition(" # ")
        key, _, value = setting.partition(" = ")
        settings[key.strip().removeprefix("# ").removesuffix(" unset")] = (
            value.strip(),
            source.strip(),
        )
    return settings


# Interfaces found from the app ---------------------------------------------


@pytest.mark.parametrize(
    ("target", "interface"),
    [
        ("shapes_app:asgi_function", "ASGI"),
        ("shapes_app:asgi_class", "ASGI"),
        ("shapes_app:asgi_partial", "ASGI"),
        ("shapes_app:wsgi_function", "WSGI"),
        ("shapes_app:wsgi_class", "WSGI"),
        ("shapes_app:wsgi_partial", "WSGI"),
        ("shapes_app:rsgi_function", "RSGI"),
        ("shapes_app:rsgi_class", "RSGI"),
        ("shapes_app:django_wsgi", "WSGI"),
        ("shapes_app:django_asgi", "ASGI"),
        ("flask_app:app", "WSGI"),
        ("starlette_app:app", "ASGI"),
        ("fastapi_app:app", "ASGI"),
        ("rsgi_app:app", "RSGI"),
    ],
)
def test_check_config_names_the_interface_found(target, interface):
    result = run_cli(target, "--check-config")
    assert result.returncode == 0, result.stderr
    assert f"is a {interface} app (found from the app)" in result.stdout


def test_an_app_of_no_known_shape_is_refused_with_the_fix():
    result = run_cli("shapes_app:not_an_app", "--check-config")
    assert result.returncode == 1
    assert "give --interface" in result.stderr
    served = run_cli("shapes_app:not_an_app", "--port", "0")
    assert served.returncode == 1
    assert "give --interface" in served.stderr


def test_check_config_fails_on_an_app_that_does_not_import():
    result = run_cli("broken_app:app", "--check-config")
    assert result.returncode == 1
    assert "ZeroDivisionError" in result.stderr


@pytest.mark.parametrize(
    ("target", "body"),
    [
        ("shapes_app:wsgi_class", "wsgi"),
        ("shapes_app:rsgi_function", "rsgi"),
        ("shapes_app:asgi_partial", "asgi"),
    ],
)
def test_served_without_interface(serve, target, body):
    server = serve(target)
    assert httpx.get(server.url + "/").text == body
    server.wait_log(", found from the app)")


def test_explicit_interface_wins(serve):
    # An RSGI app object also has no __call__: told asgi, it is served as
    # ASGI (and fails per request), exactly as asked.
    server = serve("shapes_app:asgi_function", "--interface", "asgi")
    server.wait_log("(ASGI, given)")


# The commands peers' users already have ------------------------------------


def test_granian_readme_commands(serve):
    # Granian's default interface is RSGI; its hello app runs unchanged.
    server = serve("examples.hello_rsgi:app")
    assert httpx.get(server.url + "/").text == "Hello, world!"
    server = serve(
        "examples.hello_asgi:app",
        "--interface",
        "asgi",
        "--host",
        "127.0.0.1",
        "--loop",
        "asyncio",
        "--http",
        "1",
        "--no-ws",
        "--blocking-threads",
        "2",
        "--workers-lifetime",
        "1h",
        "--respawn-interval",
        "2s",
    )
    assert httpx.get(server.url + "/").text == "Hello, world!"
    log = server.log()
    assert "ASGI, given" in log and "asyncio" in log and "HTTP/1.1" in log and "1 worker" in log
    assert "lifespan" not in log  # the hello app ignores lifespan, which is fine


def test_uvicorn_command(serve, tmp_path):
    (tmp_path / ".env").write_text("GREETING=from dotenv\n")
    server = serve(
        "fastapi_app:app",
        "--host",
        "127.0.0.1",
        "--workers",
        "1",
        "--log-level",
        "info",
        "--env-file",
        ".env",
        "--timeout-graceful-shutdown",
        "5",
        "--reload-dir",
        ".",
        "--loop",
        "asyncio",
        "--limit-concurrency",
        "100",
    )
    assert httpx.get(server.url + "/").status_code in (200, 404)
    server.wait_log("ASGI, found from the app")


def test_gunicorn_command(serve):
    from conftest import free_port

    port = free_port()
    server = serve(
        "",
        "-w",
        "2",
        "-b",
        f"127.0.0.1:{port}",
        "--threads",
        "4",
        "--graceful-timeout",
        "5",
        "--chdir",
        ".",
        "--pid",
        "gunicorn.pid",
        "--max-requests",
        "1000",
        "--max-requests-jitter",
        "50",
        "shapes_app:wsgi_function",
        env={"DIORITE_PORT": str(port)},
    )
    # With two worker processes, WSGI says so.
    assert httpx.get(server.url + "/").text == "wsgi multiprocess"
    server.wait_log("2 workers")


# Bad settings: one line naming where the value came from -------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--http2"], "unrecognized option --http2 (did you mean --http?)"),
        (["--env", "FOO=bar"], "unrecognized option --env"),
        (["-x", "2"], "unrecognized option -x"),
        (["--workers-lifetime", "soon"], "argument --workers-lifetime: expected a duration"),
        (
            ["--limit-concurrency", "2", "--backpressure", "3"],
            "give one of --limit-concurrency and --backpressure",
        ),
        (
            ["--max-requests", "-1"],
            "argument --max-requests: expected an integer of at least 0, got -1",
        ),
        (["--bind", "127.0.0.1:http"], "bind: expected an integer from 0 to 65535"),
        (["--uds-permissions", "660"], "--uds-permissions needs --uds"),
        (["--http2-keep-alive-interval", "0"], "argument --http2-keep-alive-interval: expected a"),
        (
            ["--http2-max-frame-size", "1024"],
            "expected an integer from 16384 to 16777215, got 1024",
        ),
    ],
)
def test_bad_command_lines(args, expected):
    result = run_cli(*args, "asgi_app:app")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert expected in result.stderr


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("DIORITE_PORT", "abc", "DIORITE_PORT (environment): expected an integer"),
        ("DIORITE_LOG", "maybe", "DIORITE_LOG (environment): expected true or false"),
        ("DIORITE_NO_LOG", "maybe", "DIORITE_NO_LOG (environment): expected true or false"),
        ("DIORITE_INTERFACE", "cgi", "DIORITE_INTERFACE (environment): invalid choice 'cgi'"),
    ],
)
def test_bad_environment_names_the_variable(variable, value, expected):
    result = run_cli("asgi_app:app", env={variable: value})
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert expected in result.stderr


def test_bad_config_file_names_the_key_and_file(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.diorite]\nworkers = 0\n")
    result = run_cli("asgi_app:app", cwd=tmp_path)
    assert result.returncode == 2
    assert "workers in ./pyproject.toml: expected a positive integer, got 0" in result.stderr
    (tmp_path / "pyproject.toml").write_text("[tool.diorite]\nwrokers = 2\n")
    result = run_cli("asgi_app:app", cwd=tmp_path)
    assert result.returncode == 2
    assert "unknown option 'wrokers' (did you mean workers?)" in result.stderr
    (tmp_path / "other.toml").write_text("port = 'x'\n")
    result = run_cli("asgi_app:app", "--config", str(tmp_path / "other.toml"))
    assert result.returncode == 2
    assert f"port in {tmp_path / 'other.toml'}: expected an integer" in result.stderr


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"interface": "cgi"}, "interface=: invalid choice 'cgi'"),
        ({"port": "abc"}, "port=: expected an integer from 0 to 65535, got 'abc'"),
        ({"workers": 0}, "workers=: expected a positive integer, got 0"),
        ({"shutdown_timeout": -1}, "shutdown_timeout=: expected a duration"),
        ({"prot": 80}, "unknown option(s): prot (did you mean port?)"),
    ],
)
def test_python_api_checks_values(options, expected):
    with pytest.raises(diorite.ConfigError) as raised:
        diorite.Server("asgi_app:app", **options)
    assert expected in str(raised.value)


def test_python_api_takes_durations_and_text():
    server = diorite.Server("asgi_app:app", workers_lifetime="1h30m", port="8080")
    assert server.config.workers_lifetime == 5400.0
    assert server.config.port == 8080


# Precedence: command line > environment > config file > default ----------


def test_precedence_and_print_config(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[tool.diorite]\napp = "asgi_app:app"\nport = 9001\nworkers = 3\n'
        'log-level = "debug"\nreload-ignore-patterns = ["a", "b"]\n'
    )
    settings = printed(
        "--port", "9003", env={"DIORITE_PORT": "9002", "DIORITE_WORKERS": "4"}, cwd=tmp_path
    )
    assert settings["app"] == ('"asgi_app:app"', "")
    assert settings["port"] == ("9003", "command line")
    assert settings["workers"] == ("4", "environment")
    assert settings["log-level"] == ('"debug"', "file ./pyproject.toml")
    assert settings["reload-ignore-patterns"] == ('["a", "b"]', "file ./pyproject.toml")
    assert settings["backlog"] == ("1024", "default")


def test_a_bad_value_that_loses_does_not_matter():
    config, sources, _ = resolve(
        ["--interface", "asgi", "asgi_app:app"], environ={"DIORITE_INTERFACE": "bogus"}
    )
    assert config.interface == "asgi"
    assert sources["interface"] == "command line"


def test_gunicorn_process_name_alias():
    config, sources, _ = resolve(["--name", "api", "asgi_app:app"], environ={})
    assert config.process_name == "api"
    assert sources["process_name"] == "command line"


def test_flags_from_environment_both_ways():
    config, _, _ = resolve(["asgi_app:app"], environ={"DIORITE_LOG": "false"})
    assert config.log_enabled is False
    config, _, _ = resolve(["asgi_app:app"], environ={"DIORITE_NO_LOG": "1"})
    assert config.log_enabled is False
    config, _, _ = resolve(["--log", "asgi_app:app"], environ={"DIORITE_NO_LOG": "1"})
    assert config.log_enabled is True
    config, _, _ = resolve(["--no-ws", "asgi_app:app"], environ={})
    assert config.websockets is False


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30", 30.0), ("1.5", 1.5), ("30s", 30.0), ("5m", 300.0), ("1h30m", 5400.0)],
)
def test_durations(text, seconds):
    config, _, _ = resolve(["--workers-lifetime", text, "asgi_app:app"], environ={})
    assert config.workers_lifetime == seconds


@pytest.mark.parametrize(
    ("args", "name", "value"),
    [
        # Granian's millisecond options read a bare number as milliseconds.
        (["--http1-header-read-timeout", "5000"], "http1_header_read_timeout", 5.0),
        (["--http1-header-read-timeout", "2s"], "http1_header_read_timeout", 2.0),
        (["--http2-keep-alive-interval", "1500"], "http2_keep_alive_interval", 1.5),
        (["--max-body-size", "10m"], "max_body_size", 10 * 1024 * 1024),
        (["--max-body-size", "512KiB"], "max_body_size", 512 * 1024),
        (["--http1-buffer-size", "16384"], "http1_buffer_size", 16384),
        (["--keep-alive", "2"], "timeout_keep_alive", 2.0),
        (["--limit-request-line", "0"], "limit_request_line", 0),
    ],
)
def test_units_of_limits_and_timeouts(args, name, value):
    config, _, _ = resolve([*args, "asgi_app:app"], environ={})
    assert getattr(config, name) == value


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--http1-buffer-size", "4k"], "expected a size of at least 8192 bytes, got '4k'"),
        (["--max-body-size", "lots"], "argument --max-body-size: expected a size in bytes"),
        (["--http1-header-read-timeout", "0"], "expected a duration above zero"),
        (["--limit-request-fields", "0"], "expected a positive integer, got 0"),
    ],
)
def test_bad_limits(args, expected):
    with pytest.raises(diorite.ConfigError, match=expected.replace("(", r"\(")):
        resolve([*args, "asgi_app:app"], environ={})
    result = run_cli(*args, "asgi_app:app")
    assert result.returncode == 2 and expected in result.stderr, result.stderr


def test_websocket_pings_default_to_uvicorns_and_zero_turns_them_off():
    config, _, _ = resolve(["asgi_app:app"], environ={})
    assert (config.ws_ping_interval, config.ws_ping_timeout) == (20.0, 20.0)
    config, _, _ = resolve(
        ["--ws-ping-interval", "0", "--ws-ping-timeout", "none", "asgi_app:app"], environ={}
    )
    assert (config.ws_ping_interval, config.ws_ping_timeout) == (None, None)
    config, _, _ = resolve(["asgi_app:app"], environ={"DIORITE_WS_PING_INTERVAL": "500ms"})
    assert config.ws_ping_interval == 0.5
    assert diorite.Server("asgi_app:app", ws_ping_interval=None).config.ws_ping_interval is None
    with pytest.raises(diorite.ConfigError, match="ws_ping_timeout=: expected a duration"):
        diorite.Server("asgi_app:app", ws_ping_timeout=-1)


def test_help_is_grouped_and_names_variables():
    result = run_cli("--help")
    assert result.returncode == 0
    for group in ("binding:", "HTTP:", "workers:", "logging:", "configuration:"):
        assert group in result.stdout
    assert "[env: DIORITE_PORT]" in result.stdout


# Grace: what the options promise is what happens ---------------------------


def test_the_default_kill_timeout_covers_the_grace(serve):
    server = serve("asgi_app:app", "--workers", "2", "--shutdown-timeout", "6")
    server.wait_log("is ready")
    clients = send_before_stop(server, "/slow?delay=3", 1)
    server.signal(signal.SIGTERM)
    assert answers(clients) == [b"slow done"]


def test_a_kill_timeout_shorter_than_the_grace_is_said(serve):
    server = serve(
        "asgi_app:app", "--workers", "2", "--shutdown-timeout", "6", "--workers-kill-timeout", "2"
    )
    server.wait_log("--workers-kill-timeout 2.0s is shorter than --shutdown-timeout 6.0s")


def test_a_second_signal_says_what_it_does(serve):
    server = serve("asgi_app:app")
    [client] = send_before_stop(server, "/slow?delay=5", 1)
    server.signal(signal.SIGINT)
    server.wait_log("shutting down")
    server.signal(signal.SIGINT)
    server.wait_log("second signal: cutting off the requests still running")
    assert server.proc.wait(20) == 0
    # The request was cut off: the connection closed with no answer.
    client.settimeout(10)
    assert client.recv(100) == b""
    client.close()
    assert "were cut off" not in server.log()


def test_config_dataclass_round_trips_through_json():
    config, _, _ = resolve(["--workers", "2", "asgi_app:app"], environ={})
    from diorite.config import Config

    again = Config(**json.loads(json.dumps(__import__("dataclasses").asdict(config))))
    assert again == config


def test_docs_hold_the_options_table():
    import subprocess
    import sys

    from conftest import ROOT

    table = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "options_table.py")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert table in (ROOT / "docs" / "cli.md").read_text(), "run tools/options_table.py"
