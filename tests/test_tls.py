"""TLS against the real server: httpx over HTTP/1.1 and HTTP/2 (ALPN),
curl, `openssl s_client` for protocol versions and mutual TLS, websockets
over wss://, encrypted keys, certificate reload, and bad input.
Certificates come from trustme (a throwaway CA per test module)."""

from __future__ import annotations

import asyncio
import datetime
import json
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
import trustme
from conftest import run_cli
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from websockets.asyncio.client import connect as ws_connect

OPENSSL = shutil.which("openssl")
CURL = shutil.which("curl")


class Pki:
    """A CA, a server certificate for localhost/127.0.0.1 and client
    certificates, written as PEM files."""

    def __init__(self, root: Path, name: str = "a"):
        self.dir = root / name
        self.dir.mkdir()
        self.ca = trustme.CA()
        server = self.ca.issue_cert("localhost", "127.0.0.1")
        self.cert = self.dir / "chain.pem"
        self.cert.write_bytes(b"".join(blob.bytes() for blob in server.cert_chain_pems))
        self.server_leaf_pem = server.cert_chain_pems[0].bytes().decode()
        self.key = self.dir / "key.pem"
        server.private_key_pem.write_to_path(str(self.key))
        self.ca_file = self.dir / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self.client = self.ca.issue_cert("client@example.com")
        self.client_file = self.dir / "client.pem"
        self.client.private_key_and_cert_chain_pem.write_to_path(str(self.client_file))
        self.client_leaf_pem = self.client.cert_chain_pems[0].bytes().decode()

    def flags(self, *more: str) -> list[str]:
        return ["--ssl-certificate", str(self.cert), "--ssl-keyfile", str(self.key), *more]

    def context(self, client_cert: bool = False) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        if client_cert:
            context.load_cert_chain(str(self.client_file))
        return context

    def revoke_client(self) -> Path:
        """A CRL from this CA revoking the client certificate."""
        ca_key = serialization.load_pem_private_key(self.ca.private_key_pem.bytes(), None)
        ca_cert = x509.load_pem_x509_certificate(self.ca.cert_pem.bytes())
        client = x509.load_pem_x509_certificate(self.client.cert_chain_pems[0].bytes())
        now = datetime.datetime.now(datetime.timezone.utc)
        revoked = (
            x509.RevokedCertificateBuilder()
            .serial_number(client.serial_number)
            .revocation_date(now - datetime.timedelta(minutes=1))
            .build()
        )
        crl = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(ca_cert.subject)
            .last_update(now - datetime.timedelta(minutes=1))
            .next_update(now + datetime.timedelta(days=1))
            .add_revoked_certificate(revoked)
            .add_extension(x509.CRLNumber(1), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        path = self.dir / "revoked.crl.pem"
        path.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
        return path


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"), "b")


def https(server, path: str = "/") -> str:
    return f"https://127.0.0.1:{server.port}{path}"


def get_json(server, pki: Pki, http2: bool = False, client_cert: bool = False, **kw) -> dict:
    with httpx.Client(verify=pki.context(client_cert), http2=http2) as client:
        response = client.get(https(server), **kw)
        assert response.status_code == 200
        info = response.json()
        info["_http_version"] = response.http_version
        return info


def s_client(server, *args: str, send: bytes = b"GET / HTTP/1.0\r\n\r\n") -> str:
    """`openssl s_client` against the server: what it printed, both streams."""
    done = subprocess.run(
        [OPENSSL, "s_client", "-ign_eof", "-connect", f"127.0.0.1:{server.port}", *args],
        input=send,
        capture_output=True,
        timeout=30,
    )
    return (done.stdout + done.stderr).decode(errors="replace")


# -- HTTP over TLS ----------------------------------------------------------


def test_https_over_http1_and_http2_with_the_tls_extension(serve, pki):
    server = serve("tls_app:asgi", *pki.flags())
    one = get_json(server, pki)
    assert one["_http_version"] == "HTTP/1.1"
    assert one["scheme"] == "https"
    two = get_json(server, pki, http2=True)
    assert two["_http_version"] == "HTTP/2"
    assert two["http_version"] == "2"
    tls = two["tls"]
    assert tls["server_cert"] == pki.server_leaf_pem
    assert tls["client_cert_chain"] == []
    assert tls["client_cert_error"] is None
    assert tls["tls_version"] == 0x0304
    assert tls["cipher_suite"] in (0x1301, 0x1302, 0x1303)
    server.wait_log(f"https://127.0.0.1:{server.port}")


def test_a_large_upload_over_http2_and_tls(serve, pki):
    server = serve("tls_app:asgi", *pki.flags())
    body = bytes(range(256)) * 8192  # 2 MiB
    with httpx.Client(verify=pki.context(), http2=True) as client:
        response = client.post(https(server), content=body)
    assert response.http_version == "HTTP/2"
    assert response.json()["body_length"] == len(body)


def test_the_http_option_decides_what_alpn_offers(serve, pki):
    only_one = serve("tls_app:asgi", *pki.flags("--http", "1"))
    assert get_json(only_one, pki, http2=True)["_http_version"] == "HTTP/1.1"
    only_two = serve("tls_app:asgi", *pki.flags("--http", "2"))
    assert get_json(only_two, pki, http2=True)["_http_version"] == "HTTP/2"


@pytest.mark.skipif(CURL is None, reason="curl is not installed")
def test_curl_gets_http2_by_alpn_and_http1_when_it_asks(serve, pki):
    server = serve("tls_app:asgi", *pki.flags())

    def curl(*flags: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [CURL, "-sS", "-v", "--cacert", str(pki.ca_file), *flags, https(server)],
            capture_output=True,
            text=True,
            timeout=30,
        )

    two = curl("--http2")
    assert two.returncode == 0, two.stderr
    assert (
        "ALPN: server accepted h2" in two.stderr or "ALPN, server accepted to use h2" in two.stderr
    )
    assert json.loads(two.stdout)["http_version"] == "2"
    one = curl("--http1.1")
    assert one.returncode == 0, one.stderr
    assert json.loads(one.stdout)["http_version"] == "1.1"


def test_wsgi_and_rsgi_see_https(serve, pki):
    wsgi = get_json(serve("tls_app:wsgi", *pki.flags(), "--interface", "wsgi"), pki)
    assert wsgi["scheme"] == "https"
    assert wsgi["https"] == "on"
    rsgi = get_json(serve("tls_app:rsgi", *pki.flags(), "--interface", "rsgi"), pki, http2=True)
    assert rsgi["scheme"] == "https"
    assert rsgi["http_version"] == "2"


@pytest.mark.parametrize("interface", ["asgi", "rsgi"])
def test_websockets_over_wss(serve, pki, interface):
    server = serve(f"tls_app:{interface}", *pki.flags(), "--interface", interface)
    url = f"wss://127.0.0.1:{server.port}/ws"

    # The asyncio client, not the sync one: the sync client reads the
    # socket in one thread while it writes in another, which OpenSSL does
    # not allow on one connection. Under TLS 1.3 that lost or garbled
    # about 1 handshake in 250 (against Granian and Uvicorn as well).
    async def echo() -> dict:
        async with ws_connect(url, ssl=pki.context(), open_timeout=10) as ws:
            await ws.send("hello")
            return json.loads(await ws.recv())

    info = asyncio.run(echo())
    assert info["echo"] == "hello"
    if interface == "asgi":
        assert info["scheme"] == "wss"
        assert info["tls"]["server_cert"] == pki.server_leaf_pem
    else:
        assert info["scheme"] == "https"
        assert info["proto"] == "ws"


def test_every_worker_serves_tls(serve, pki):
    server = serve("tls_app:asgi", *pki.flags("--workers", "2"))
    for _ in range(6):
        assert get_json(server, pki)["scheme"] == "https"
    server.wait_log(f"https://127.0.0.1:{server.port}")


# -- protocol versions and mutual TLS ---------------------------------------


@pytest.mark.skipif(OPENSSL is None, reason="openssl is not installed")
def test_protocol_min(serve, pki):
    default = serve("tls_app:asgi", *pki.flags())
    old = s_client(default, "-tls1_2")
    assert "Protocol  : TLSv1.2" in old and "HTTP/1.0 200" in old, old
    strict = serve("tls_app:asgi", *pki.flags("--ssl-protocol-min", "tls1.3"))
    refused = s_client(strict, "-tls1_2")
    assert "protocol version" in refused or "no protocols available" in refused
    new = s_client(strict, "-tls1_3")
    assert "TLSv1.3" in new and "HTTP/1.0 200" in new, new


def test_mutual_tls_hands_the_client_chain_to_the_app(serve, pki):
    server = serve("tls_app:asgi", *pki.flags("--ssl-ca", str(pki.ca_file), "--ssl-client-verify"))
    info = get_json(server, pki, client_cert=True)
    assert info["tls"]["client_cert_chain"][0] == pki.client_leaf_pem
    info = get_json(server, pki, http2=True, client_cert=True)
    assert info["tls"]["client_cert_chain"][0] == pki.client_leaf_pem
    with pytest.raises(httpx.TransportError):
        get_json(server, pki)


@pytest.mark.skipif(OPENSSL is None, reason="openssl is not installed")
def test_mutual_tls_refuses_in_the_handshake(serve, pki, other_pki):
    crl = pki.revoke_client()
    server = serve(
        "tls_app:asgi",
        *pki.flags("--ssl-ca", str(pki.ca_file), "--ssl-client-verify", "--ssl-crl", str(crl)),
    )
    # TLS 1.2 so that a refusal ends the handshake itself.
    common = ("-tls1_2", "-CAfile", str(pki.ca_file))
    no_cert = s_client(server, *common)
    assert "handshake failure" in no_cert or "certificate required" in no_cert, no_cert
    wrong_ca = s_client(server, *common, "-cert", str(other_pki.client_file))
    assert "unknown ca" in wrong_ca or "bad certificate" in wrong_ca, wrong_ca
    revoked = s_client(server, *common, "-cert", str(pki.client_file))
    assert "certificate revoked" in revoked, revoked
    for refused in (no_cert, wrong_ca, revoked):
        assert "HTTP/1.0 200" not in refused and "HTTP/1.1 200" not in refused
    # The same client certificate without the CRL: accepted.
    plain = serve("tls_app:asgi", *pki.flags("--ssl-ca", str(pki.ca_file), "--ssl-client-verify"))
    accepted = s_client(plain, *common, "-cert", str(pki.client_file))
    assert "HTTP/1.1 200" in accepted or "HTTP/1.0 200" in accepted, accepted


def test_a_ca_without_client_verify_makes_certificates_optional(serve, pki):
    server = serve("tls_app:asgi", *pki.flags("--ssl-ca", str(pki.ca_file)))
    assert get_json(server, pki)["tls"]["client_cert_chain"] == []
    with_cert = get_json(server, pki, client_cert=True)
    assert with_cert["tls"]["client_cert_chain"][0] == pki.client_leaf_pem


# -- keys ---------------------------------------------------------------------


def encrypted_key(pki: Pki, password: bytes) -> Path:
    key = serialization.load_pem_private_key(pki.key.read_bytes(), None)
    path = pki.dir / f"encrypted-{password.decode()}.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(password),
        )
    )
    return path


def test_an_encrypted_key_with_its_password(serve, pki):
    key = encrypted_key(pki, b"sesame")
    flags = ["--ssl-certificate", str(pki.cert), "--ssl-keyfile", str(key)]
    server = serve("tls_app:asgi", *flags, "--ssl-keyfile-password", "sesame")
    assert get_json(server, pki)["scheme"] == "https"


def start_fails(*args: str) -> str:
    """Runs diorite expecting it to refuse its settings: exit 2 and one line."""
    done = run_cli("tls_app:asgi", "--port", "0", *args, timeout=30)
    assert done.returncode == 2, done.stderr + done.stdout
    lines = [line for line in done.stderr.splitlines() if line.startswith("diorite: error:")]
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    return lines[0]


def test_bad_tls_settings_name_the_option(pki, other_pki, tmp_path):
    key = encrypted_key(pki, b"sesame")
    cert = ["--ssl-certificate", str(pki.cert)]
    assert "--ssl-keyfile-password" in start_fails(
        *cert, "--ssl-keyfile", str(key), "--ssl-keyfile-password", "wrong"
    )
    line = start_fails(*cert, "--ssl-keyfile", str(key))
    assert "--ssl-keyfile-password" in line and "encrypted" in line
    line = start_fails(*cert, "--ssl-keyfile", str(other_pki.key))
    assert line.startswith("diorite: error: --ssl-keyfile:") and "not the key" in line
    missing = tmp_path / "missing.pem"
    assert "--ssl-certificate" in start_fails(
        "--ssl-certificate", str(missing), "--ssl-keyfile", str(pki.key)
    )
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    line = start_fails("--ssl-certificate", str(garbage), "--ssl-keyfile", str(pki.key))
    assert "--ssl-certificate" in line and "no PEM certificate" in line
    assert "--ssl-keyfile" in start_fails(*cert, "--ssl-keyfile", str(garbage))
    assert "--ssl-ca" in start_fails(*pki.flags("--ssl-ca", str(garbage)))
    assert "--ssl-crl" in start_fails(
        *pki.flags("--ssl-ca", str(pki.ca_file), "--ssl-crl", str(garbage))
    )
    line = start_fails(*pki.flags("--ssl-client-verify"))
    assert "--ssl-client-verify" in line and "CA" in line
    assert "needs --ssl-keyfile" in start_fails(*cert)
    assert "needs --ssl-certificate" in start_fails("--ssl-keyfile", str(pki.key))
    assert "Unix socket" in start_fails(*pki.flags("--uds", str(tmp_path / "s.sock")))
    assert "--ssl-protocol-min" in start_fails(*pki.flags("--ssl-protocol-min", "tls1.1"))


# -- bad clients --------------------------------------------------------------


def test_plain_http_to_the_tls_port_gets_a_clear_answer(serve, pki):
    server = serve("tls_app:asgi", *pki.flags())
    answer = server.raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"https://" in answer
    # The server goes on serving.
    assert get_json(server, pki)["scheme"] == "https"


def test_broken_and_silent_handshakes_are_closed(serve, pki):
    server = serve(
        "tls_app:asgi", *pki.flags("--log-level", "debug", "--http1-header-read-timeout", "1000")
    )
    # A TLS record header announcing a handshake, then garbage.
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(b"\x16\x03\x01\x00\x05hello" + b"\x00" * 64)
        assert s.recv(1024)[:1] in (b"\x15", b"")  # an alert, or closed
    # A client that starts a handshake and goes quiet is closed in time.
    with socket.create_connection(("127.0.0.1", server.port), timeout=15) as s:
        s.sendall(b"\x16\x03\x01")
        started = time.monotonic()
        assert s.recv(1024) == b""
        assert time.monotonic() - started < 10
    server.wait_log("TLS handshake")
    assert get_json(server, pki)["scheme"] == "https"


def test_a_failed_handshake_is_logged_at_debug_with_the_client(serve, pki, other_pki):
    server = serve("tls_app:asgi", *pki.flags("--log-level", "debug"))
    with pytest.raises(httpx.ConnectError):
        get_json(server, other_pki)  # the client does not trust the server
    log = server.wait_log("TLS handshake failed")
    assert "127.0.0.1:" in log


# -- certificate reload --------------------------------------------------------


def served_leaf(server) -> str:
    """The PEM of the certificate a new handshake gets."""
    return ssl.get_server_certificate(("127.0.0.1", server.port))


def install(live: Path, pki: Pki) -> None:
    """Puts `pki`'s certificate and key where the server reads them, the
    way certbot does: new files, then the names moved onto them."""
    for name, source in (("chain.pem", pki.cert), ("key.pem", pki.key)):
        staged = live / f".{name}.new"
        shutil.copyfile(source, staged)
        staged.replace(live / name)


def wait_count(server, text: str, count: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while server.log().count(text) < count:
        assert time.monotonic() < deadline, f"{text!r} not {count} times in:\n{server.log()}"
        time.sleep(0.05)


def normalized(pem: str) -> str:
    return ssl.DER_cert_to_PEM_cert(ssl.PEM_cert_to_DER_cert(pem))


def test_sighup_reloads_the_certificate_without_dropping_connections(
    serve, pki, other_pki, tmp_path
):
    live = tmp_path / "live"
    live.mkdir()
    install(live, pki)
    flags = ["--ssl-certificate", str(live / "chain.pem"), "--ssl-keyfile", str(live / "key.pem")]
    # At debug level, a failed handshake is logged with rustls' reason.
    server = serve("tls_app:asgi", *flags, "--log-level", "debug")
    server.wait_log("serving")  # the SIGHUP handler is in place
    assert normalized(served_leaf(server)) == normalized(pki.server_leaf_pem)

    # A keep-alive connection made before the reload, and load throughout.
    both = ssl.create_default_context(cafile=str(pki.ca_file))
    both.load_verify_locations(cafile=str(other_pki.ca_file))
    kept = httpx.Client(verify=both, http2=True)
    assert kept.get(https(server)).status_code == 200
    failures: list[BaseException] = []
    done = threading.Event()
    count = 0

    def load() -> None:
        nonlocal count
        while not done.is_set():
            try:
                with httpx.Client(verify=both) as client:
                    assert client.get(https(server)).status_code == 200
                count += 1
            except BaseException as exc:  # noqa: BLE001 - any failure counts
                failures.append(exc)

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        for round_ in range(4):
            install(live, other_pki if round_ % 2 == 0 else pki)
            server.signal(signal.SIGHUP)
            wait_count(server, "SIGHUP: TLS files reloaded", round_ + 1)
            time.sleep(0.5)
    finally:
        done.set()
        for thread in threads:
            thread.join()
    refusals = [line for line in server.log().splitlines() if "handshake" in line]
    assert not failures, (failures[:3], refusals[:5])
    assert count > 20
    assert server.log().count("TLS files reloaded") == 4
    # Last installed: pki (rounds 0..3 alternate other, pki, other, pki).
    assert normalized(served_leaf(server)) == normalized(pki.server_leaf_pem)
    # The connection from before every reload still answers, unbroken.
    assert kept.get(https(server)).status_code == 200
    kept.close()


def test_a_bad_reload_keeps_the_certificate_in_use(serve, pki, other_pki, tmp_path):
    live = tmp_path / "live"
    live.mkdir()
    install(live, pki)
    flags = ["--ssl-certificate", str(live / "chain.pem"), "--ssl-keyfile", str(live / "key.pem")]
    server = serve("tls_app:asgi", *flags)
    server.wait_log("serving")
    shutil.copyfile(other_pki.key, live / "key.pem")  # a key of another certificate
    server.signal(signal.SIGHUP)
    log = server.wait_log("TLS files not reloaded")
    assert "--ssl-keyfile" in log
    assert normalized(served_leaf(server)) == normalized(pki.server_leaf_pem)
    assert get_json(server, pki)["scheme"] == "https"


def test_reload_interval_picks_up_renewed_files(serve, pki, other_pki, tmp_path):
    live = tmp_path / "live"
    live.mkdir()
    install(live, pki)
    flags = ["--ssl-certificate", str(live / "chain.pem"), "--ssl-keyfile", str(live / "key.pem")]
    server = serve("tls_app:asgi", *flags, "--ssl-reload-interval", "0.2", "--workers", "2")
    wait_count(server, "is ready", 2)  # the workers have read the first files
    install(live, other_pki)
    # Both workers reload; every new handshake then gets the new certificate.
    wait_count(server, "TLS files changed: TLS files reloaded", 2)
    for _ in range(4):
        assert normalized(served_leaf(server)) == normalized(other_pki.server_leaf_pem)


def test_static_files_over_tls_and_http2(serve, pki, tmp_path):
    mount = tmp_path / "public"
    mount.mkdir()
    data = bytes(range(256)) * 4096  # 1 MiB, streamed in chunks
    (mount / "data.bin").write_bytes(data)
    server = serve("tls_app:asgi", *pki.flags("--static-path-mount", str(mount)))
    with httpx.Client(verify=pki.context(), http2=True) as client:
        whole = client.get(https(server, "/static/data.bin"))
        part = client.get(https(server, "/static/data.bin"), headers={"Range": "bytes=10-19"})
        app = client.get(https(server, "/elsewhere"))
    assert whole.http_version == "HTTP/2"
    assert whole.content == data
    assert part.status_code == 206 and part.content == data[10:20]
    assert app.json()["scheme"] == "https"
