"""Where a worker's time goes: a `perf` profile of one diorite worker under
load, per interface and scenario, as a flame graph and a table.

    python bench/profile.py [--interface asgi ...] [--scenario hello ...]
                            [--duration 5] [--site DIR] [--out bench/results/profiles]

Scenarios: `hello` (examples/hello_*.py under wrk, the default) and
bench/harness.py's, on its apps and with its clients: `json-4k`,
`post-64k`, `stream-100` (wrk), `h2-hello-16` (h2load) and `ws-echo`
(bench/wsload; ASGI and RSGI only).

Run it with the Python whose `diorite` is to be profiled (3.12 or later
names Python functions through `-X perf`; older ones show the
interpreter's C functions only). Needs `perf` (Debian's `linux-perf`) and
inferno's `inferno-collapse-perf` and `inferno-flamegraph` (`cargo install
inferno`) on PATH. Server and wrk are pinned to one core each, as
`bench/run.py --pin` does. This is a measurement to run by hand, never a
test.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import harness
import run
from run import BIN, ROOT, SCENARIOS, free_port, wait_listening, wrk

#: The scenarios beside hello world: bench/harness.py's, by name.
WRK_SCENARIOS = {name: (path, script) for name, path, script, _ in harness.SCENARIOS}
OTHER_SCENARIOS = ("json-4k", "post-64k", "stream-100", harness.H2_SCENARIO, harness.WS_SCENARIO)

#: Samples per second: enough for ~5,000 samples in 5 s, little enough that
#: perf's own cost stays small beside the server's.
FREQUENCY = 999


def load(scenario: str, port: int, duration: int, connections: int) -> float:
    """Runs `scenario`'s client against `port`: requests (or round trips) a
    second."""
    if scenario == "hello":
        return wrk(port, duration, connections)
    if scenario == harness.H2_SCENARIO:
        return harness.h2load(port, duration)["rps"]
    if scenario == harness.WS_SCENARIO:
        return harness.wsload(port, duration)["rps"]
    path, script = WRK_SCENARIOS[scenario]
    return harness.wrk(port, path, script, duration, connections)["rps"]


def profile(interface: str, scenario: str, args, out: Path) -> tuple[float, str]:
    """Requests/s under perf, and the path of the recorded profile."""
    port = free_port()
    app = SCENARIOS[interface] if scenario == "hello" else harness.APPS[interface]
    command = [str(BIN / "diorite"), "--interface", interface, "--host", "127.0.0.1"]
    command += ["--port", str(port), "--log-level", "warning", app]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([*args.path, str(ROOT)]))
    if sys.version_info >= (3, 12):
        # Python frames appear in the profile under their function names.
        env["PYTHONPERFSUPPORT"] = "1"
    proc = subprocess.Popen(
        [*run.PIN_SERVER, *command],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    data = out / f"{interface}-{scenario}.perf.data"
    try:
        wait_listening(port, proc)
        load(scenario, port, 1, args.connections)
        recorder = subprocess.Popen(
            ["perf", "record", "-F", str(FREQUENCY), "--call-graph", "dwarf,16384"]
            + ["-p", str(proc.pid), "-o", str(data), "--", "sleep", str(args.duration)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        rate = load(scenario, port, args.duration, args.connections)
        recorder.wait()
    finally:
        run.stop(proc)
    return rate, str(data)


def flame_graph(data: str, svg: Path, title: str) -> None:
    script = subprocess.run(
        ["perf", "script", "-i", data], capture_output=True, text=True, check=True
    ).stdout
    folded = subprocess.run(
        ["inferno-collapse-perf"], input=script, capture_output=True, text=True, check=True
    ).stdout
    svg.write_text(
        subprocess.run(
            ["inferno-flamegraph", "--title", title],
            input=folded,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )


def top(data: str, count: int) -> list[tuple[str, str, str]]:
    """The `count` symbols with the most samples of their own: (share,
    library, symbol)."""
    report = subprocess.run(
        ["perf", "report", "-i", data, "--no-children", "--sort", "dso,symbol"]
        + ["--stdio", "-g", "none"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = []
    for line in report.splitlines():
        found = re.match(r"\s*([\d.]+)%\s+(\S+)\s+\[.\]\s+(.*)$", line)
        if found:
            # perf pads the symbol column and adds its own after it.
            symbol = re.split(r"\s{2,}", found.group(3))[0]
            rows.append((found.group(1), found.group(2), symbol[:90]))
        if len(rows) == count:
            break
    return rows


def by_library(data: str) -> list[tuple[str, str]]:
    """Each library's share of the samples: (share, library)."""
    report = subprocess.run(
        ["perf", "report", "-i", data, "--no-children", "--sort", "dso", "--stdio", "-g", "none"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return re.findall(r"^\s*([\d.]+)%\s+(\S+)", report, re.MULTILINE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interface", choices=tuple(SCENARIOS), action="append")
    parser.add_argument("--scenario", choices=("hello", *OTHER_SCENARIOS), action="append")
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument(
        "--site", dest="path", action="append", default=[], help="put first on PYTHONPATH"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "profiles")
    args = parser.parse_args()
    for tool in ("perf", "wrk", "inferno-collapse-perf", "inferno-flamegraph"):
        if shutil.which(tool) is None:
            sys.exit(f"bench/profile.py needs {tool} on PATH")
    run.PIN_SERVER[:] = ["taskset", "-c", "1"]
    run.PIN_CLIENT[:] = ["taskset", "-c", "0"]
    # harness.py's clients are not pinned by it: they inherit this process's
    # CPU (the server's taskset overrides it).
    os.sched_setaffinity(0, {0})
    scenarios = args.scenario or ["hello"]
    if harness.WS_SCENARIO in scenarios:
        run.build_tool("wsload")
    args.out.mkdir(parents=True, exist_ok=True)
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    for interface in args.interface or list(SCENARIOS):
        for scenario in scenarios:
            if scenario == harness.WS_SCENARIO and interface == "wsgi":
                continue
            report(interface, scenario, python, args)


def report(interface: str, scenario: str, python: str, args) -> None:
    """Profiles one scenario and prints its section of the results."""
    rate, data = profile(interface, scenario, args, args.out)
    svg = args.out / f"{interface}-{scenario}-py{python}.svg"
    unit = "round trips/s" if scenario == harness.WS_SCENARIO else "req/s"
    title = f"diorite {interface.upper()} {scenario}, Python {python}, {rate:,.0f} {unit}"
    flame_graph(data, svg, title)
    print(f"\n### {interface.upper()} {scenario}: {rate:,.0f} {unit}, {svg.name}\n")
    shares = [f"{library} {share}%" for share, library in by_library(data)[:6]]
    print("By library: " + ", ".join(shares) + ".\n")
    print("| self | library | symbol |\n|---|---|---|")
    for share, library, symbol in top(data, args.top):
        print(f"| {share}% | {library} | `{symbol}` |")
    os.remove(data)


if __name__ == "__main__":
    main()
