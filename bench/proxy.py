"""Hello world with and without forwarding headers, alternating rounds:

    flock /tmp/bench.lock python bench/proxy.py --site SITE [--base BASE_SITE] [--rounds 8]

SITE (and BASE_SITE, a build from before the proxy support, for comparison)
are directories a fastrel wheel was installed into. Configurations: proxy
headers on with a trusted peer and no headers sent (every request is looked
through), `--no-proxy-headers`, and `X-Forwarded-For` sent (every request
gets its own connection facts). Server on CPU 1, wrk on CPU 0. A
measurement to run by hand, never a test.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wrk(port: int, seconds: int, header: str | None) -> float:
    extra = ["-H", header] if header else []
    command = ["taskset", "-c", "0", "wrk", "-t1", "-c64", f"-d{seconds}s", *extra]
    out = subprocess.run(
        [*command, f"http://127.0.0.1:{port}/"], capture_output=True, text=True
    ).stdout
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def measure(site: str, flags: list[str], header: str | None, seconds: int) -> float:
    port = free_port()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([site, str(ROOT)]))
    command = ["taskset", "-c", "1", sys.executable, "-m", "diorite", "--interface", "asgi"]
    command += ["--port", str(port), "--log-level", "warning", *flags, "examples.hello_asgi:app"]
    proc = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        wrk(port, 1, header)
        return wrk(port, seconds, header)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", required=True)
    parser.add_argument("--base")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--duration", type=int, default=3)
    args = parser.parse_args()
    configs = [
        ("proxy headers on, none sent", args.site, [], None),
        ("--no-proxy-headers", args.site, ["--no-proxy-headers"], None),
        ("X-Forwarded-For sent", args.site, [], "X-Forwarded-For: 203.0.113.9"),
    ]
    if args.base:
        configs.insert(0, ("base (before)", args.base, [], None))
    results: dict[str, list[float]] = {name: [] for name, *_ in configs}
    for round_ in range(args.rounds):
        for name, site, flags, header in configs if round_ % 2 == 0 else configs[::-1]:
            results[name].append(measure(site, flags, header, args.duration))
    reference = statistics.median(results[configs[0][0]])
    for name, values in results.items():
        median = statistics.median(values)
        rounds = ", ".join(f"{v:.0f}" for v in values)
        print(f"{name:30s} median {median:8.0f} req/s  {median / reference:.3f}  ({rounds})")


if __name__ == "__main__":
    main()
