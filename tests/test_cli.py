"""The command line: option names, errors, environment variables."""

import httpx
import pytest
from conftest import run_cli


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--port", "abc"], "--port"),
        (["--port", "70000"], "--port"),
        (["--interface", "cgi"], "--interface"),
        (["--http", "3"], "--http"),
        (["--runtime-threads", "0"], "--runtime-threads"),
        (["--blocking-threads", "0"], "--blocking-threads"),
        (["--workers", "0"], "--workers"),
        (["--workers-max-rss", "lots"], "--workers-max-rss"),
        (["--uds-permissions", "999"], "--uds-permissions"),
        (["--reload-ignore-patterns", "(unclosed"], "--reload-ignore-patterns"),
        (["--shutdown-timeout", "-1"], "--shutdown-timeout"),
        (["--backlog", "-1"], "--backlog"),
        (["--backpressure", "x"], "--backpressure"),
        (["--backpressure-timeout", "-1"], "--backpressure-timeout"),
        (["--log-level", "loud"], "--log-level"),
        (["--ws-max-message-size", "0"], "--ws-max-message-size"),
        (["--no-such-option"], "--no-such-option"),
    ],
)
def test_bad_option_is_one_line_naming_it(args, option):
    result = run_cli(*args, "asgi_app:app")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert option in lines[0]
    assert "Traceback" not in result.stderr


def test_bad_value_from_environment_names_the_variable():
    result = run_cli("asgi_app:app", env={"DIORITE_PORT": "eighty"})
    assert result.returncode == 2
    assert "DIORITE_PORT" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_app_argument():
    result = run_cli()
    assert result.returncode == 2
    assert "APP" in result.stderr


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("no_such_module:app", "cannot import module 'no_such_module'"),
        ("asgi_app:nothing", "has no attribute 'nothing'"),
        ("broken_app:app", "ZeroDivisionError"),
        ("asgi_app", "module:attribute"),
    ],
)
def test_unimportable_app_exits_1_with_the_error(target, expected):
    result = run_cli(target, "--port", "0")
    assert result.returncode == 1, result.stderr
    assert expected in result.stderr
    assert "panicked" not in result.stderr


def test_version():
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("diorite ")


def test_port_and_app_from_environment(serve):
    from conftest import free_port

    port = free_port()
    server = serve("", env={"DIORITE_PORT": str(port), "DIORITE_APP": "asgi_app:app"})
    assert server.port == port
    assert httpx.get(server.url + "/").text == "Hello, world!"


def test_command_line_wins_over_environment(serve):
    server = serve("asgi_app:app", "--interface", "asgi", env={"DIORITE_INTERFACE": "bogus"})
    assert httpx.get(server.url + "/").status_code == 200


def test_factory(serve):
    server = serve("factory_app:create_app", "--factory")
    assert httpx.get(server.url + "/").text == "made by a factory"
    server2 = serve("factory_app:create_app()")
    assert httpx.get(server2.url + "/").text == "made by a factory"


def test_working_dir(serve, tmp_path):
    (tmp_path / "wd").mkdir()
    (tmp_path / "wd" / "wd_app.py").write_text(
        "async def app(scope, receive, send):\n"
        "    if scope['type'] != 'http': return\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "    await send({'type': 'http.response.body', 'body': b'from working dir'})\n"
    )
    server = serve("wd_app:app", "--working-dir", str(tmp_path / "wd"))
    assert httpx.get(server.url + "/").text == "from working dir"


def test_no_log_silences_the_server(serve):
    server = serve("asgi_app:app", "--no-log")
    assert httpx.get(server.url + "/").status_code == 200
    assert "serving" not in server.log()


@pytest.mark.parametrize("extra", [[], ["--workers", "2"]])
def test_port_in_use_is_a_clear_error(extra):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("asgi_app:app", "--port", str(port), *extra)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr
