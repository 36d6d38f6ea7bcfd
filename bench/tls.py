"""Hello world over TLS: diorite against Granian with the same certificate,
HTTP/1.1 with wrk on https:// and HTTP/2 with h2load on https:// (ALPN h2),
one worker each, and bench/ceiling (hyper and rustls with no Python, the
same certificate) as the most the machine and clients allow.

    python bench/tls.py [--duration 5] [--rounds 3] [--pin] [--site DIR]

Servers alternate round by round so that noise on a shared machine hits
all three; the report gives each one's median requests/s, the ratio and
each server's share of the ceiling.
`--site` runs diorite from a directory a (release) wheel was installed
into (`pip install --target DIR`), as bench/run.py's `--build`. A
measurement to run by hand, never a test.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import trustme
from cryptography.hazmat.primitives import serialization

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run  # noqa: E402  (bench/run.py: the servers' commands and wrk's pinning)

HTTP1_CONNECTIONS = 64
H2_CLIENTS, H2_STREAMS = 16, 16


def certificate(directory: Path) -> tuple[Path, Path, Path]:
    """An ECDSA P-256 certificate for 127.0.0.1 from a throwaway CA, its key
    as PKCS#8 (the one form Granian reads) and the CA."""
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    cert, key, ca_file = directory / "cert.pem", directory / "key.pem", directory / "ca.pem"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    private = serialization.load_pem_private_key(issued.private_key_pem.bytes(), None)
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    ca.cert_pem.write_to_path(str(ca_file))
    return cert, key, ca_file


def client_output(*command: str) -> str:
    """What a load generator (pinned with --pin) printed."""
    done = subprocess.run([*run.PIN_CLIENT, *command], capture_output=True, text=True, check=True)
    return done.stdout


def wrk_https(port: int, duration: int) -> float:
    url = f"https://127.0.0.1:{port}/"
    out = client_output("wrk", "-t1", f"-c{HTTP1_CONNECTIONS}", f"-d{duration}s", url)
    if errors := re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out):
        print(f"    wrk reported: {errors.group(0)}", file=sys.stderr)
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def h2load_https(port: int, duration: int) -> float:
    url = f"https://127.0.0.1:{port}/"
    out = client_output("h2load", "-t1", f"-c{H2_CLIENTS}", f"-m{H2_STREAMS}", f"-D{duration}", url)
    if "h2" not in re.search(r"Application protocol: (\S+)", out).group(1):
        raise RuntimeError(f"h2load did not get HTTP/2:\n{out}")
    failed = int(re.search(r"(\d+) failed", out).group(1))
    if failed:
        print(f"    h2load: {failed} requests failed", file=sys.stderr)
    return float(re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", out).group(1))


def measure(server: str, interface: str, client, tls: list[str], site: Path | None) -> float:
    port = run.free_port()
    command = run.server_command(server, interface, run.SCENARIOS[interface], port)
    if server == "ceiling":
        # hyper-ceiling PORT CERT KEY: the same certificate, no Python.
        command += tls[1::2]
    else:
        command[-1:-1] = tls
    path = [str(site)] if site and server == "diorite" else []
    proc = subprocess.Popen(
        [*run.PIN_SERVER, *command],
        cwd=run.ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join([*path, str(run.ROOT)])),
    )
    try:
        run.wait_listening(port, proc)
        client(port, 1)  # warm-up
        return client(port, ARGS.duration)
    finally:
        run.stop(proc)


ARGS = argparse.Namespace()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--interface", choices=tuple(run.SCENARIOS), action="append")
    parser.add_argument("--pin", action="store_true", help="server on CPU 1, clients on CPU 0")
    parser.add_argument("--site", type=Path, help="run diorite from this directory")
    parser.parse_args(namespace=ARGS)
    for tool in ("wrk", "h2load"):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} is not installed (apt-get install wrk nghttp2-client)")
    if ARGS.pin:
        run.PIN_SERVER[:] = ["taskset", "-c", "1"]
        run.PIN_CLIENT[:] = ["taskset", "-c", "0"]
    run.build_ceiling()
    with tempfile.TemporaryDirectory() as directory:
        cert, key, _ = certificate(Path(directory))
        tls = ["--ssl-certificate", str(cert), "--ssl-keyfile", str(key)]
        rows = []
        for interface in ARGS.interface or list(run.SCENARIOS):
            for name, client in (("HTTP/1.1 (wrk)", wrk_https), ("HTTP/2 (h2load)", h2load_https)):
                results: dict[str, list[float]] = {"diorite": [], "granian": [], "ceiling": []}
                for _ in range(ARGS.rounds):
                    for server in results:
                        results[server].append(measure(server, interface, client, tls, ARGS.site))
                rows.append((interface, name, *(statistics.median(r) for r in results.values())))
                print(f"  {interface} {name}: {results}", file=sys.stderr, flush=True)
    pinned = ", server and client pinned to one core each" if ARGS.pin else ""
    print(
        f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}{pinned}, "
        f"{ARGS.rounds} rounds of {ARGS.duration} s, median; HTTP/1.1: {HTTP1_CONNECTIONS} "
        f"connections; HTTP/2: {H2_CLIENTS} connections x {H2_STREAMS} streams"
    )
    print(
        "| interface | protocol | diorite req/s | granian req/s | ceiling req/s | diorite/granian "
        "| diorite of ceiling | granian of ceiling |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for interface, name, d, g, c in rows:
        print(
            f"| {interface} | {name} | {d:,.0f} | {g:,.0f} | {c:,.0f} | {d / g:.2f} "
            f"| {d / c:.0%} | {g / c:.0%} |"
        )


if __name__ == "__main__":
    main()
