"""Diorite behind real proxies: nginx sending X-Forwarded-* (plain HTTP,
websockets, a path prefix), HAProxy sending the PROXY protocol (v1 and v2,
HTTP, websockets, TLS passed through), spoofing from untrusted peers, and
the root path on all three interfaces.

nginx and HAProxy are the Debian packages: installed with apt-get when
missing (as root), else these tests are skipped with the reason."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import trustme
from conftest import free_port, run_cli
from websockets.sync.client import connect as ws_connect

# A second loopback address: nginx talks to diorite from it, so the test
# client (127.0.0.1) and the proxy (127.0.0.2) are told apart.
PROXY_ADDR = "127.0.0.2"


def _installed(program: str, package: str) -> str:
    found = shutil.which(program) or shutil.which(f"/usr/sbin/{program}")
    if found:
        return found
    why = f"{program} is not installed"
    try:
        for command in (
            ["apt-get", "install", "-y", "-q", package],
            ["apt-get", "update", "-q"],
            ["apt-get", "install", "-y", "-q", package],
        ):
            done = subprocess.run(command, capture_output=True, text=True, timeout=600)
            if done.returncode == 0 and command[1] == "install":
                break
            if done.returncode != 0:
                why = f"apt-get could not install {package}: {done.stderr.strip()[-300:]}"
    except (OSError, subprocess.TimeoutExpired) as exc:
        why = f"apt-get could not install {package}: {exc}"
    found = shutil.which(program) or shutil.which(f"/usr/sbin/{program}")
    if found:
        return found
    pytest.skip(f"PROXY TESTS SKIPPED: {why}")


@pytest.fixture(scope="session")
def nginx_bin() -> str:
    return _installed("nginx", "nginx")


@pytest.fixture(scope="session")
def haproxy_bin() -> str:
    return _installed("haproxy", "haproxy")


def _wait_port(port: int, proc: subprocess.Popen, log: Path, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"proxy exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"proxy did not listen:\n{log.read_text()}")


class Proxy:
    """A proxy process in the foreground, stopped by the fixture."""

    def __init__(self, command: list[str], port: int, log: Path):
        self.port = port
        self.log_path = log
        self._log = open(log, "wb")
        self.proc = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT)
        _wait_port(port, self.proc, log)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


@pytest.fixture
def nginx(nginx_bin, tmp_path):
    """`nginx(upstream_port)`: nginx on a free port in front of diorite,
    proxying from 127.0.0.2 with the usual X-Forwarded-* headers, saying
    the client came over https (TLS terminated at nginx), websockets
    passed through, and `/app/` mounted with the prefix taken off."""
    started: list[Proxy] = []

    def start(upstream: int) -> Proxy:
        port = free_port()
        root = tmp_path / f"nginx-{port}"
        root.mkdir()
        conf = root / "nginx.conf"
        headers = f"""
            proxy_http_version 1.1;
            proxy_bind {PROXY_ADDR};
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto https;
            proxy_set_header X-Forwarded-Host $http_host;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
        """
        conf.write_text(f"""
daemon off;
master_process off;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        '' close;
    }}
    upstream diorite {{ server 127.0.0.1:{upstream}; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://diorite;
            {headers}
        }}
        location /app/ {{
            proxy_pass http://diorite/;
            {headers}
            proxy_set_header X-Forwarded-Prefix /app;
        }}
    }}
}}
""")
        proxy = Proxy([nginx_bin, "-p", str(root), "-c", str(conf)], port, root / "out.log")
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


@pytest.fixture
def haproxy(haproxy_bin, tmp_path):
    """`haproxy(upstream_port, send)`: HAProxy in TCP mode on a free port,
    opening each connection to diorite with `send` (`send-proxy` or
    `send-proxy-v2`)."""
    started: list[Proxy] = []

    def start(upstream: int, send: str) -> Proxy:
        port = free_port()
        conf = tmp_path / f"haproxy-{port}.cfg"
        conf.write_text(f"""
global
    maxconn 256
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend front
    bind 127.0.0.1:{port}
    default_backend diorite
backend diorite
    server d1 127.0.0.1:{upstream} {send}
""")
        log = tmp_path / f"haproxy-{port}.log"
        proxy = Proxy([haproxy_bin, "-db", "-f", str(conf)], port, log)
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


def through(proxy: Proxy, path: str, **headers: str) -> dict:
    answer = httpx.get(proxy.url + path, headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


# nginx and X-Forwarded-*


def test_asgi_behind_nginx_sees_the_client_https_and_the_host(serve, nginx):
    server = serve("proxy_app:asgi", "--interface", "asgi", "--forwarded-allow-ips", PROXY_ADDR)
    proxy = nginx(server.port)
    info = through(proxy, "/x", host="shop.example")
    assert info["client"] == ["127.0.0.1", 0]
    assert info["scheme"] == "https"
    assert info["host"] == "shop.example"
    assert info["server"] == ["127.0.0.1", server.port]
    assert (info["root_path"], info["path"]) == ("", "/x")
    # The client's own X-Forwarded-For is kept in the list by nginx, but
    # the right-most untrusted hop (nginx's client) is the client.
    info = through(proxy, "/x", **{"x-forwarded-for": "6.6.6.6"})
    assert info["client"] == ["127.0.0.1", 0]


def test_a_trusted_chain_is_walked_to_the_rightmost_untrusted_hop(serve, nginx):
    server = serve(
        "proxy_app:asgi",
        "--interface",
        "asgi",
        "--forwarded-allow-ips",
        f"{PROXY_ADDR},127.0.0.1,10.0.0.0/8",
    )
    proxy = nginx(server.port)
    # nginx's client (127.0.0.1) is trusted too: it is a proxy that says
    # 10.1.1.1 (trusted) got it from 203.0.113.9, who claims 6.6.6.6.
    chain = "6.6.6.6, 203.0.113.9, 10.1.1.1"
    info = through(proxy, "/", **{"x-forwarded-for": chain})
    assert info["client"] == ["203.0.113.9", 0]


def test_websocket_behind_nginx(serve, nginx):
    server = serve("proxy_app:asgi", "--interface", "asgi", "--forwarded-allow-ips", PROXY_ADDR)
    proxy = nginx(server.port)
    with ws_connect(f"ws://127.0.0.1:{proxy.port}/chat", open_timeout=10) as ws:
        ws.send("hi")
        info = json.loads(ws.recv(timeout=10))
    assert info["echo"] == "hi"
    assert info["scheme"] == "wss"
    assert info["client"] == ["127.0.0.1", 0]


def test_prefix_from_nginx_on_asgi_and_wsgi(serve, nginx):
    asgi = serve("proxy_app:asgi", "--interface", "asgi", "--forwarded-allow-ips", PROXY_ADDR)
    info = through(nginx(asgi.port), "/app/items/1")
    assert (info["root_path"], info["path"], info["raw_path"]) == (
        "/app",
        "/app/items/1",
        "/app/items/1",
    )
    wsgi = serve("proxy_app:wsgi", "--interface", "wsgi", "--forwarded-allow-ips", PROXY_ADDR)
    info = through(nginx(wsgi.port), "/app/items/1")
    assert (info["SCRIPT_NAME"], info["PATH_INFO"]) == ("/app", "/items/1")


def test_wsgi_behind_nginx(serve, nginx):
    server = serve("proxy_app:wsgi", "--interface", "wsgi", "--forwarded-allow-ips", PROXY_ADDR)
    info = through(nginx(server.port), "/w", host="shop.example:8443")
    assert info["REMOTE_ADDR"] == "127.0.0.1"
    assert info["wsgi.url_scheme"] == "https"
    assert info["HTTPS"] == "on"
    assert info["HTTP_HOST"] == "shop.example:8443"
    assert (info["SERVER_NAME"], info["SERVER_PORT"]) == ("shop.example", "8443")


def test_rsgi_behind_nginx(serve, nginx):
    server = serve("proxy_app:rsgi", "--interface", "rsgi", "--forwarded-allow-ips", PROXY_ADDR)
    info = through(nginx(server.port), "/r", host="shop.example")
    assert info["client"] == "127.0.0.1:0"
    assert info["scheme"] == "https"
    assert info["host"] == "shop.example"


# spoofing


SPOOF = {
    "x-forwarded-for": "6.6.6.6",
    "x-forwarded-proto": "https",
    "x-forwarded-host": "evil.example",
    "x-forwarded-prefix": "/evil",
    "forwarded": "for=7.7.7.7;proto=https",
}


@pytest.mark.parametrize(
    "flags",
    [("--forwarded-allow-ips", "10.0.0.1"), ("--no-proxy-headers",)],
    ids=["untrusted-peer", "proxy-headers-off"],
)
def test_headers_from_an_untrusted_peer_are_ignored(serve, flags):
    server = serve("proxy_app:asgi", "--interface", "asgi", *flags)
    info = httpx.get(server.url + "/s", headers=SPOOF).json()
    assert info["client"][0] == "127.0.0.1" and info["client"][1] != 0
    assert (info["scheme"], info["host"], info["root_path"]) == (
        "http",
        f"127.0.0.1:{server.port}",
        "",
    )
    wsgi = serve("proxy_app:wsgi", "--interface", "wsgi", *flags)
    info = httpx.get(wsgi.url + "/s", headers=SPOOF).json()
    assert (info["REMOTE_ADDR"], info["wsgi.url_scheme"], info["SCRIPT_NAME"]) == (
        "127.0.0.1",
        "http",
        "",
    )


def test_trusted_by_default_is_loopback(serve):
    server = serve("proxy_app:asgi", "--interface", "asgi")
    info = httpx.get(server.url + "/s", headers=SPOOF).json()
    # `Forwarded` wins over X-Forwarded-*.
    assert info["client"] == ["7.7.7.7", 0]
    assert info["scheme"] == "https"


def test_wsgi_drops_header_names_with_underscores(serve):
    server = serve("proxy_app:wsgi", "--interface", "wsgi", "--forwarded-allow-ips", "10.0.0.1")
    answer = server.raw(
        b"GET / HTTP/1.0\r\nHost: x\r\nX_Forwarded_For: 6.6.6.6\r\nX-Other_Name: 1\r\n\r\n"
    )
    info = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert info["HTTP_X_FORWARDED_FOR"] is None


# PROXY protocol through HAProxy


def _get_raw(port: int, path: str = "/p") -> tuple[dict, int]:
    """A GET on a raw socket: the answer's JSON, and this end's port."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        # HTTP/1.0: a body that is not chunked.
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: lb.example\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        own = s.getsockname()[1]
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == b"200", data
    return json.loads(body), own


@pytest.mark.parametrize("send", ["send-proxy", "send-proxy-v2"])
def test_haproxy_proxy_protocol_gives_the_real_client(serve, haproxy, send):
    server = serve("proxy_app:asgi", "--interface", "asgi", "--proxy-protocol")
    proxy = haproxy(server.port, send)
    info, own_port = _get_raw(proxy.port)
    # The client's own port: HAProxy's connection to diorite has another.
    assert info["client"] == ["127.0.0.1", own_port]
    assert info["server"] == ["127.0.0.1", proxy.port]
    assert info["scheme"] == "http"
    rsgi = serve("proxy_app:rsgi", "--interface", "rsgi", "--proxy-protocol")
    info, own_port = _get_raw(haproxy(rsgi.port, send).port)
    assert info["client"] == f"127.0.0.1:{own_port}"
    wsgi = serve("proxy_app:wsgi", "--interface", "wsgi", "--proxy-protocol")
    info, own_port = _get_raw(haproxy(wsgi.port, send).port)
    assert (info["REMOTE_ADDR"], info["REMOTE_PORT"]) == ("127.0.0.1", str(own_port))


def test_websocket_through_haproxy(serve, haproxy):
    server = serve("proxy_app:asgi", "--interface", "asgi", "--proxy-protocol")
    proxy = haproxy(server.port, "send-proxy-v2")
    with ws_connect(f"ws://127.0.0.1:{proxy.port}/ws", open_timeout=10) as ws:
        own_port = ws.socket.getsockname()[1]
        ws.send("hi")
        info = json.loads(ws.recv(timeout=10))
    assert info["echo"] == "hi"
    assert info["client"] == ["127.0.0.1", own_port]


def test_tls_behind_haproxy_in_tcp_mode(serve, haproxy, tmp_path):
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    chain, key = tmp_path / "chain.pem", tmp_path / "key.pem"
    chain.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(key))
    server = serve(
        "proxy_app:asgi",
        "--interface",
        "asgi",
        "--proxy-protocol",
        "--ssl-certificate",
        str(chain),
        "--ssl-keyfile",
        str(key),
    )
    proxy = haproxy(server.port, "send-proxy-v2")
    context = ssl.create_default_context()
    ca.configure_trust(context)
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as raw:
        own_port = raw.getsockname()[1]
        with context.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(b"GET /t HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
    info = json.loads(data.partition(b"\r\n\r\n")[2])
    assert info["client"] == ["127.0.0.1", own_port]
    assert info["scheme"] == "https"
    assert info["tls"] is True


# PROXY protocol without a proxy


def _closed_without_answer(port: int, data: bytes) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        try:
            return s.recv(1024) == b""
        except ConnectionResetError:
            return True


def test_a_connection_without_a_preamble_is_closed(serve):
    server = serve(
        "proxy_app:asgi", "--interface", "asgi", "--proxy-protocol", "--log-level", "debug"
    )
    assert _closed_without_answer(server.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    server.wait_log("no valid PROXY protocol preamble")
    # A hand-made v1 preamble from a trusted peer works; LOCAL/UNKNOWN
    # keeps the socket's own addresses.
    preamble = b"PROXY TCP4 198.51.100.4 10.0.0.1 4711 443\r\n"
    answer = server.raw(preamble + b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["client"] == ["198.51.100.4", 4711]
    answer = server.raw(b"PROXY UNKNOWN\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["client"][0] == "127.0.0.1"


def test_a_preamble_from_an_untrusted_peer_is_refused(serve):
    server = serve(
        "proxy_app:asgi",
        "--interface",
        "asgi",
        "--proxy-protocol",
        "--forwarded-allow-ips",
        "10.0.0.1",
        "--log-level",
        "debug",
    )
    preamble = b"PROXY TCP4 198.51.100.4 10.0.0.1 4711 443\r\n"
    assert _closed_without_answer(server.port, preamble + b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    server.wait_log("not a trusted proxy")


# root path


def test_root_path_on_asgi(serve):
    server = serve("proxy_app:asgi", "--interface", "asgi", "--root-path", "/app/")
    for sent, path in [
        ("/app/x", "/app/x"),
        ("/app", "/app"),
        ("/x", "/app/x"),
        ("/apple", "/app/apple"),
    ]:
        info = httpx.get(server.url + sent).json()
        assert (info["root_path"], info["path"]) == ("/app", path), sent
    with ws_connect(f"ws://127.0.0.1:{server.port}/app/ws", open_timeout=10) as ws:
        ws.send("hi")
        info = json.loads(ws.recv(timeout=10))
    assert (info["root_path"], info["path"], info["scheme"]) == ("/app", "/app/ws", "ws")


def test_root_path_on_wsgi(serve):
    server = serve("proxy_app:wsgi", "--interface", "wsgi", "--url-path-prefix", "/app")
    for sent, path_info in [("/app/x", "/x"), ("/app", ""), ("/x", "/x"), ("/apple", "/apple")]:
        info = httpx.get(server.url + sent).json()
        assert (info["SCRIPT_NAME"], info["PATH_INFO"]) == ("/app", path_info), sent


def test_root_path_on_rsgi_leaves_the_path(serve):
    # RSGI has no root path: the app gets the path as sent.
    server = serve("proxy_app:rsgi", "--interface", "rsgi", "--url-path-prefix", "/app")
    assert httpx.get(server.url + "/app/x").json()["path"] == "/app/x"


@pytest.mark.parametrize(
    "flags, named",
    [
        (("--forwarded-allow-ips", "10.0.0.1,localhost"), "--forwarded-allow-ips"),
        (("--root-path", "app"), "--url-path-prefix"),
        (("--proxy-protocol", "--uds", "/tmp/diorite-proxy-test.sock"), "--proxy-protocol"),
    ],
)
def test_bad_settings_stop_start_up(flags, named):
    done = run_cli(*flags, "proxy_app:asgi")
    assert done.returncode == 2, done.stderr
    assert named in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_forwarded_allow_ips_from_the_environment(serve):
    server = serve(
        "proxy_app:asgi",
        "--interface",
        "asgi",
        env={"DIORITE_FORWARDED_ALLOW_IPS": "10.0.0.1, 192.168.0.0/16"},
    )
    info = httpx.get(server.url + "/", headers=SPOOF).json()
    assert info["client"][0] == "127.0.0.1"


def test_a_unix_socket_peer_is_trusted(serve, tmp_path):
    path = str(tmp_path / "d.sock")
    serve(
        "proxy_app:asgi",
        "--interface",
        "asgi",
        "--uds",
        path,
        "--forwarded-allow-ips",
        "10.0.0.1",
        ready=False,
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            transport = httpx.HTTPTransport(uds=path)
            with httpx.Client(transport=transport) as client:
                answer = client.get("http://x/u", headers={"x-forwarded-for": "203.0.113.9"})
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert answer.json()["client"] == ["203.0.113.9", 0]


def test_a_preamble_that_never_ends_times_out(serve):
    server = serve(
        "proxy_app:asgi",
        "--interface",
        "asgi",
        "--proxy-protocol",
        "--http1-header-read-timeout",
        "500",
        "--log-level",
        "debug",
    )
    started = time.monotonic()
    assert _closed_without_answer(server.port, b"PROXY TCP4 198.51.100.4 ")
    assert time.monotonic() - started < 5
    server.wait_log("PROXY protocol preamble not done within 500ms")
