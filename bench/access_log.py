"""What the access log costs: hello world with it off and on, diorite and
Granian, one worker each, with wrk.

    python bench/access_log.py [--duration 5] [--rounds 3] [--pin]
                               [--interface asgi ...]

The four servers alternate round by round (as bench/run.py does). With the
log on, both write their default line to a file (their standard output,
redirected), so the cost includes formatting and writing every line. This is
a measurement to run by hand, never a test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

import run
from run import BIN, PIN_CLIENT, PIN_SERVER, ROOT, SCENARIOS, free_port, wait_listening, wrk

SERVERS = ("diorite", "diorite+log", "granian", "granian+log")


def command(server: str, interface: str, port: int) -> list[str]:
    program = "diorite" if server.startswith("diorite") else "granian"
    args = [str(BIN / program), "--interface", interface, "--host", "127.0.0.1"]
    args += ["--port", str(port), "--log-level", "warning"]
    if server.endswith("+log"):
        args.append("--access-log")
    return [*PIN_SERVER, *args, SCENARIOS[interface]]


def measure(server: str, interface: str, args, out) -> float:
    port = free_port()
    proc = subprocess.Popen(
        command(server, interface, port),
        cwd=ROOT,
        stdout=out,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join([*args.path, str(ROOT)])),
    )
    try:
        wait_listening(port, proc)
        wrk(port, 1, args.connections)
        return wrk(port, args.duration, args.connections)
    finally:
        run.stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    run.common_arguments(parser)
    parser.add_argument("--interface", choices=tuple(SCENARIOS), action="append")
    parser.add_argument(
        "--site", dest="path", action="append", default=[], help="put first on PYTHONPATH"
    )
    args = parser.parse_args()
    if args.pin:
        PIN_SERVER[:] = ["taskset", "-c", "1"]
        PIN_CLIENT[:] = ["taskset", "-c", "0"]
    pinned = ", server and wrk pinned to one core each" if args.pin else ""
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}{pinned}")
    print("| interface | diorite off | diorite on | on/off | granian off | granian on | on/off |")
    print("|---|---|---|---|---|---|---|")
    for interface in args.interface or ["asgi", "wsgi"]:
        results: dict[str, list[float]] = {s: [] for s in SERVERS}
        for _ in range(args.rounds):
            for server in SERVERS:
                with tempfile.TemporaryFile() as out:
                    results[server].append(measure(server, interface, args, out))
        m = {s: statistics.median(v) for s, v in results.items()}
        print(
            f"| {interface} | {m['diorite']:,.0f} | {m['diorite+log']:,.0f} "
            f"| {m['diorite+log'] / m['diorite']:.3f} | {m['granian']:,.0f} "
            f"| {m['granian+log']:,.0f} | {m['granian+log'] / m['granian']:.3f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
