"""Hello-world benchmark: diorite against Granian, one worker each, with wrk.

    python bench/run.py [--duration 5] [--rounds 3] [--connections 64]
                        [--build NAME=SITE_DIR ...]

Servers alternate round by round so that noise on a shared machine hits both;
the report gives each server's median requests/s and the ratio. `--build`
adds another build of diorite to the same run: a directory a wheel was
installed into (`pip install --target DIR`), found first on PYTHONPATH; the
strict-GIL build of `make test-strict` is one (docs/architecture.md). This is
a measurement to run by hand, never a test.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

# With --pin the server gets one core and wrk the other, so the numbers
# measure how much work each server does per request rather than how the
# scheduler shares two cores among three busy threads.
PIN_SERVER: list[str] = []
PIN_CLIENT: list[str] = []

SCENARIOS = {
    "asgi": "examples.hello_asgi:app",
    "rsgi": "examples.hello_rsgi:app",
    "wsgi": "examples.hello_wsgi:app",
}

CEILING_BIN = ROOT / "target" / "ceiling" / "release" / "hyper-ceiling"


def build_tool(name: str) -> None:
    """Builds the Rust crate bench/<name> (release) into target/<name>."""
    subprocess.run(
        ["cargo", "build", "--release", "-q"],
        cwd=ROOT / "bench" / name,
        env=dict(os.environ, CARGO_TARGET_DIR=str(ROOT / "target" / name)),
        check=True,
    )


def build_ceiling() -> None:
    """Builds the Python-free hyper server the numbers are compared with."""
    build_tool("ceiling")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


WORKERS = [1]

# Other builds of diorite measured in the same run: name -> site directory.
BUILDS: dict[str, Path] = {}


def server_command(server: str, interface: str, app: str, port: int) -> list[str]:
    common = ["--interface", interface, "--host", "127.0.0.1", "--port", str(port)]
    common += ["--workers", str(WORKERS[0])]
    if server == "diorite" or server in BUILDS:
        return [str(BIN / "diorite"), *common, "--log-level", "warning", app]
    if server == "granian":
        return [str(BIN / "granian"), *common, "--log-level", "warning", app]
    if server == "ceiling":
        return [str(CEILING_BIN), str(port)]
    raise ValueError(server)


def wait_listening(port: int, proc: subprocess.Popen, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not start")


def wrk(port: int, duration: int, connections: int, path: str = "/") -> float:
    out = subprocess.run(
        [
            *PIN_CLIENT,
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{duration}s",
            f"http://127.0.0.1:{port}{path}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
    if errors:
        print(f"    wrk reported: {errors.group(0)}", file=sys.stderr)
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def pythonpath(server: str) -> list[str]:
    return ([str(BUILDS[server])] if server in BUILDS else []) + [str(ROOT)]


def measure(server: str, interface: str, app: str, args) -> float:
    port = free_port()
    proc = subprocess.Popen(
        [*PIN_SERVER, *server_command(server, interface, app, port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join(pythonpath(server))),
    )
    try:
        wait_listening(port, proc)
        wrk(port, 1, args.connections)  # warm-up
        return wrk(port, args.duration, args.connections)
    finally:
        stop(proc)


def stop(proc: subprocess.Popen, sig: int = signal.SIGINT) -> None:
    """Stops a server gracefully, killing it after 10 s."""
    proc.send_signal(sig)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def common_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every wrk benchmark here takes."""
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--pin", action="store_true", help="server on CPU 1, wrk on CPU 0")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common_arguments(parser)
    parser.add_argument("--interface", choices=tuple(SCENARIOS), action="append")
    parser.add_argument("--workers", type=int, default=1, help="worker processes per server")
    parser.add_argument(
        "--build",
        action="append",
        default=[],
        metavar="NAME=SITE_DIR",
        help="another diorite build to measure in the same run (repeatable)",
    )
    args = parser.parse_args()
    WORKERS[0] = args.workers
    for build in args.build:
        name, _, site = build.partition("=")
        if not name or not (Path(site) / "diorite").is_dir():
            sys.exit(f"bench: --build {build!r}: expected NAME=DIR with DIR/diorite in it")
        BUILDS[name] = Path(site).resolve()
    if args.pin:
        PIN_SERVER[:] = ["taskset", "-c", "1"]
        PIN_CLIENT[:] = ["taskset", "-c", "0"]
    if not shutil.which("wrk"):
        sys.exit("bench: wrk is not installed (apt-get install wrk)")
    interfaces = args.interface or list(SCENARIOS)
    build_ceiling()
    pinned = ", server and wrk pinned to one core each" if args.pin else ""
    workers = f", {args.workers} workers each" if args.workers > 1 else ""
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}{pinned}{workers}")
    ceiling: list[float] = []
    rows = []
    for interface in interfaces:
        results: dict[str, list[float]] = {"diorite": [], **{b: [] for b in BUILDS}, "granian": []}
        for _ in range(args.rounds):
            for server in results:
                results[server].append(measure(server, interface, SCENARIOS[interface], args))
            ceiling.append(measure("ceiling", interface, "", args))
        granian = statistics.median(results.pop("granian"))
        for server, samples in results.items():
            rows.append((interface, server, statistics.median(samples), granian))
    top = statistics.median(ceiling)
    print("| interface | build | diorite req/s | granian req/s | diorite/granian | of ceiling |")
    print("|---|---|---|---|---|---|")
    for interface, server, d, g in rows:
        print(f"| {interface} | {server} | {d:,.0f} | {g:,.0f} | {d / g:.2f} | {d / top:.0%} |")
    print(f"| hyper ceiling (no Python) | | {top:,.0f} | | | 100% |", flush=True)


if __name__ == "__main__":
    main()
