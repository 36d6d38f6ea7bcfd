"""The cost of `--metrics`: hello world with metrics off and on, diorite
against Granian (its metrics off and on), one worker each, with wrk.

    python bench/metrics.py [--duration 5] [--rounds 3] [--pin] [--interface asgi]
                            [--site DIR]

The four servers alternate round by round, so that noise on a shared
machine hits all of them; the report gives each one's median requests/s,
the cost of metrics for each server, and diorite's ratio to Granian with
the same setting. A measurement to run by hand, never a test.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import run
from run import BIN, ROOT, SCENARIOS, free_port, wait_listening, wrk

TICK = os.sysconf("SC_CLK_TCK")


def tree(pid: int) -> list[int]:
    """`pid` and its descendants (Granian runs its worker in a child)."""
    found = [pid]
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                for child in f.read().split():
                    found += tree(int(child))
        except OSError:
            pass
    return found


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of `pid` and its descendants."""
    total = 0
    for each in tree(pid):
        try:
            with open(f"/proc/{each}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICK


def measure(server: str, interface: str, app: str, args) -> tuple[float, float]:
    """Requests/s, and the server's CPU time per request in microseconds
    (less sensitive than throughput to what else the machine runs)."""
    port = free_port()
    proc = subprocess.Popen(
        [*run.PIN_SERVER, *run.server_command(server, interface, app, port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join(run.pythonpath(server))),
    )
    try:
        wait_listening(port, proc)
        wrk(port, 1, args.connections)  # warm-up
        before = cpu_seconds(proc.pid)
        rate = wrk(port, args.duration, args.connections)
        used = cpu_seconds(proc.pid) - before
        return rate, used / (rate * args.duration) * 1e6
    finally:
        run.stop(proc)


#: server -> extra arguments; each gets a metrics port of its own.
SETUPS = {
    "diorite": ("diorite", []),
    "diorite --metrics": ("diorite", ["--metrics"]),
    "granian": ("granian", []),
    "granian --metrics": ("granian", ["--metrics"]),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    run.common_arguments(parser)
    parser.add_argument("--interface", choices=tuple(SCENARIOS), default="asgi")
    parser.add_argument(
        "--site", metavar="DIR", help="diorite installed there (a fastrel wheel), not the venv's"
    )
    args = parser.parse_args()
    if args.site:
        run.BUILDS["diorite"] = Path(args.site).resolve()
    if args.pin:
        run.PIN_SERVER[:] = ["taskset", "-c", "1"]
        run.PIN_CLIENT[:] = ["taskset", "-c", "0"]
    if not shutil.which("wrk"):
        sys.exit("bench: wrk is not installed (apt-get install wrk)")
    original = run.server_command

    results: dict[str, list[float]] = {name: [] for name in SETUPS}
    cpu: dict[str, list[float]] = {name: [] for name in SETUPS}
    for _ in range(args.rounds):
        for name, (server, extra) in SETUPS.items():
            extra = [*extra, "--metrics-port", str(free_port())] if extra else extra

            def command(server_, interface, app, port, server=server, extra=extra):
                cmd = original(server, interface, app, port)
                return [*cmd[:-1], *extra, cmd[-1]]

            run.server_command = command
            rate, per_request = measure(server, args.interface, SCENARIOS[args.interface], args)
            results[name].append(rate)
            cpu[name].append(per_request)
    run.server_command = original
    medians = {name: statistics.median(samples) for name, samples in results.items()}
    cpus = {name: statistics.median(samples) for name, samples in cpu.items()}
    pinned = ", server and wrk pinned to one core each" if args.pin else ""
    print(f"{args.interface} hello world, {args.rounds} rounds of {args.duration}s{pinned} ({BIN})")
    print(
        "| server | req/s (median) | rounds | req/s lost to metrics | CPU µs/request (median) "
        "| CPU added by metrics | diorite/granian (req/s) |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in SETUPS:
        base = name.split()[0]
        cost = 1 - medians[name] / medians[base] if name != base else 0.0
        ratio = ""
        if name.startswith("diorite"):
            ratio = f"{medians[name] / medians[name.replace('diorite', 'granian')]:.2f}"
        added = cpus[name] / cpus[base] - 1 if name != base else 0.0
        rounds = " ".join(
            f"{r:,.0f} ({c:.1f} µs)" for r, c in zip(results[name], cpu[name], strict=True)
        )
        print(
            f"| {name} | {medians[name]:,.0f} | {rounds} | {cost:.1%} | {cpus[name]:.1f} "
            f"| {added:+.1%} | {ratio} |"
        )


if __name__ == "__main__":
    main()
