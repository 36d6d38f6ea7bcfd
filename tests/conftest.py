"""Starts the real `diorite` command on a free port and hands tests a handle.

Every server's log is checked at teardown: a Rust panic or a PyO3 ownership
error anywhere in it fails the test that ran the server.
"""

from __future__ import annotations

import http.client
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APPS = Path(__file__).resolve().parent / "apps"

# Lines that must never appear in a server log.
FORBIDDEN = (
    "panicked",
    "Cannot drop pointer into Python heap",
    "Cannot clone pointer into Python heap",
    "is unsendable",
    "PanicException",
    "Task was destroyed but it is pending",
    "Fatal Python error",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def diorite_command() -> list[str]:
    return [sys.executable, "-m", "diorite"]


class Server:
    def __init__(
        self, app: str, *args: str, tmp_path: Path, env: dict | None = None, check_log=True
    ):
        env = env or {}
        self.port = int(env["DIORITE_PORT"]) if "DIORITE_PORT" in env else free_port()
        port_args = [] if "DIORITE_PORT" in env else ["--port", str(self.port)]
        self.host = "127.0.0.1"
        self.log_path = tmp_path / f"server-{self.port}.log"
        self.check_log = check_log
        full_env = dict(os.environ)
        full_env["PYTHONPATH"] = os.pathsep.join(
            [str(APPS), str(ROOT), full_env.get("PYTHONPATH", "")]
        )
        full_env["PYTHONUNBUFFERED"] = "1"
        full_env.update(env)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [*diorite_command(), *port_args, *args, *([app] if app else [])],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=str(tmp_path),
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def wait_ready(self, timeout: float = 20.0) -> Server:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"diorite exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"diorite did not start listening:\n{self.log()}")

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_log(self, text: str, timeout: float = 10.0) -> str:
        """The log, once it contains `text` (the server may log just after
        the client got its answer)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            log = self.log()
            if text in log:
                return log
            time.sleep(0.05)
        raise AssertionError(f"{text!r} never appeared in the log:\n{self.log()}")

    def signal(self, sig=signal.SIGINT) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"diorite did not stop on SIGINT:\n{self.log()}") from None
        self._log.close()
        return self.proc.returncode

    def raw(self, request: bytes) -> bytes:
        """Sends `request` as raw bytes and returns everything the server
        answers until it closes the connection."""
        with socket.create_connection((self.host, self.port), timeout=30) as s:
            s.sendall(request)
            data = bytearray()
            while chunk := s.recv(65536):
                data += chunk
        return bytes(data)

    def rss_mib(self) -> float:
        """The server process's resident memory."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS line")

    def assert_clean_log(self) -> None:
        text = self.log()
        for bad in FORBIDDEN:
            assert bad not in text, f"server log contains {bad!r}:\n{text}"


@pytest.fixture
def serve(tmp_path):
    """`serve(app, *flags)` starts diorite and waits until it listens."""
    servers: list[Server] = []

    def start(app: str, *args: str, env: dict | None = None, ready: bool = True) -> Server:
        server = Server(app, *args, tmp_path=tmp_path, env=env)
        servers.append(server)
        return server.wait_ready() if ready else server

    yield start
    for server in servers:
        code = server.stop()
        if server.check_log:
            server.assert_clean_log()
            assert code == 0, f"diorite exited with {code}:\n{server.log()}"


def send_before_stop(server, target: str, count: int) -> list[socket.socket]:
    """`count` connections, each with a GET of `target` sent, for a test
    that stops the server while they are in flight: connected before the
    stop (a connection made after it is refused)."""
    clients = [socket.create_connection((server.host, server.port)) for _ in range(count)]
    for client in clients:
        client.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    time.sleep(0.3)
    return clients


def answers(clients: list[socket.socket], timeout: float = 10) -> list[bytes]:
    """The bodies of the answers on `clients`, each read until it closes."""
    bodies = []
    for client in clients:
        client.settimeout(timeout)
        response = http.client.HTTPResponse(client)
        response.begin()
        assert response.status == 200
        bodies.append(response.read())
        client.close()
    return bodies


def run_cli(
    *args: str, env: dict | None = None, timeout: float = 30, cwd=None
) -> subprocess.CompletedProcess:
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = os.pathsep.join([str(APPS), str(ROOT)])
    full_env.update(env or {})
    return subprocess.run(
        [*diorite_command(), *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
    )


def pipelined_bodies(data: bytes) -> list[bytes]:
    """The bodies of the 200 responses (with Content-Length) in `data`."""
    bodies = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        length = int(re.search(rb"content-length: (\d+)", head, re.I).group(1))
        bodies.append(rest[:length])
        data = rest[length:]
    return bodies


def hold_idle_connections(
    server,
    count: int,
    request: bytes = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    status: int = 200,
) -> list[socket.socket]:
    """`count` connections, each after one `request` (by default `GET /`)
    answered with `status` and then left idle (the test's open files limit
    raised for them, or the test skipped where it cannot be)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < count + 100:
        pytest.skip(f"open files limit {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, count + 100), hard))
    held = []
    try:
        for _ in range(count):
            s = socket.create_connection((server.host, server.port), timeout=10)
            held.append(s)
            s.sendall(request)
            assert s.recv(65536).startswith(f"HTTP/1.1 {status} ".encode())
    except BaseException:
        for s in held:
            s.close()
        raise
    return held
