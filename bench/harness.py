"""The full benchmark matrix: every interface and scenario, diorite against
its peers, one worker each, on loopback.

    python bench/harness.py [--duration 5] [--rounds 3] [--quick] [--site DIR]

Servers (from PyPI): Granian for all three interfaces, Uvicorn (uvloop +
httptools) for ASGI, Gunicorn (sync workers) for WSGI. Scenarios: hello
world, a 4 KiB JSON body, POST echo of 64 KiB, 1 MiB and 4 MiB responses,
a streamed response of 100 chunks (wrk), HTTP/2 hello with 16 concurrent
streams per connection (h2load; servers without h2c are left out),
websocket echo of 64-byte messages on 64 connections (bench/wsload; ASGI
and RSGI), and overload: hello world on 1,024 connections. For each:
requests (or round-trips)/s, p50/p99 latency (at 64 connections but for
the overload row), the server's RSS (all its processes) after the
scenario, and the requests that failed (non-2xx answers and wrk's socket
errors: refused, cut or timed out), summed over the rounds.
The ceiling (bench/ceiling: the same Rust stack answering every scenario
without Python) runs each round too, and every diorite number is also
given as a fraction of it. Servers alternate round by round; medians are
reported. Results go to bench/results/ as results.md and one PNG chart per
interface. Run by hand, never in tests.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

from run import CEILING_BIN, build_tool, free_port, wait_listening

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
BIN = Path(sys.executable).parent

APPS = {
    "asgi": "bench.apps.asgi_app:app",
    "rsgi": "bench.apps.rsgi_app:app",
    "wsgi": "bench.apps.wsgi_app:app",
}
CONNECTIONS = 64
# Overload: more connections than one worker answers promptly, where the
# question is the p99 latency each server keeps.
OVERLOAD_CONNECTIONS = 1024
SCENARIOS = [
    # name, path, wrk script, connections
    ("hello", "/", None, CONNECTIONS),
    ("json-4k", "/json", None, CONNECTIONS),
    ("post-64k", "/echo", BENCH / "post_64k.lua", CONNECTIONS),
    ("resp-1m", "/1m", None, CONNECTIONS),
    ("resp-4m", "/4m", None, CONNECTIONS),
    ("stream-100", "/stream", None, CONNECTIONS),
    ("hello-c1024", "/", None, OVERLOAD_CONNECTIONS),
]
H2_SCENARIO = "h2-hello-16"
WS_SCENARIO = "ws-echo"
WSLOAD_BIN = ROOT / "target" / "wsload" / "release" / "wsload"


def command(server: str, interface: str, port: int) -> list[str] | None:
    app = APPS.get(interface, "")
    if server == "ceiling":
        return [str(CEILING_BIN), str(port)]
    if server == "diorite":
        return [
            str(BIN / "diorite"),
            "--interface",
            interface,
            "--port",
            str(port),
            "--log-level",
            "warning",
            app,
        ]
    if server == "granian":
        return [
            str(BIN / "granian"),
            "--interface",
            interface,
            "--port",
            str(port),
            "--workers",
            "1",
            "--log-level",
            "warning",
            app,
        ]
    if server == "uvicorn" and interface == "asgi":
        return [
            str(BIN / "uvicorn"),
            "--port",
            str(port),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--log-level",
            "warning",
            "--no-access-log",
            app,
        ]
    if server == "gunicorn" and interface == "wsgi":
        return [
            str(BIN / "gunicorn"),
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--log-level",
            "warning",
            app,
        ]
    return None


def tree_rss_mib(pid: int) -> float:
    """RSS of a process and all its descendants."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except (OSError, StopIteration):
            continue
    return total / 1024


def to_ms(value: str) -> float:
    number, unit = re.match(r"([\d.]+)(\w+)", value).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(
    port: int, path: str, script: Path | None, duration: int, connections: int = CONNECTIONS
) -> dict:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency"]
    if script:
        cmd += ["-s", str(script)]
    out = subprocess.run(
        [*cmd, f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True
    ).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    # Connections refused or cut and requests never answered in time: under
    # overload a server that sheds load shows it here, not in its rate.
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    return {
        "rps": float(rps.group(1)) if rps else 0.0,
        "p50": to_ms(p50.group(1)) if p50 else float("nan"),
        "p99": to_ms(p99.group(1)) if p99 else float("nan"),
        "errors": (int(errors.group(1)) if errors else 0)
        + (sum(int(n) for n in socket_errors.groups()) if socket_errors else 0),
    }


def h2load(port: int, duration: int) -> dict:
    out = subprocess.run(
        ["h2load", "-c", "4", "-m", "16", "-D", str(duration), f"http://127.0.0.1:{port}/"],
        capture_output=True,
        text=True,
    ).stdout
    rps = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    failed = re.search(r"(\d+) failed", out)
    ok = rps and failed and int(failed.group(1)) == 0
    return {
        "rps": float(rps.group(1)) if ok else 0.0,
        "p50": float("nan"),
        "p99": float("nan"),
        "errors": 0,
    }


def wsload(port: int, duration: int) -> dict:
    out = subprocess.run(
        [str(WSLOAD_BIN), f"ws://127.0.0.1:{port}/ws", "--duration", str(duration)],
        capture_output=True,
        text=True,
    )
    rate = re.search(r"round-trips/sec: ([\d.]+)", out.stdout)
    errors = re.search(r"errors: (\d+)", out.stdout)
    ok = rate and errors and int(errors.group(1)) == 0
    if not ok:
        print(f"bench: wsload failed: {out.stderr.strip()[:200]}", file=sys.stderr)
    p50 = re.search(r"p50 ms: ([\d.]+)", out.stdout)
    p99 = re.search(r"p99 ms: ([\d.]+)", out.stdout)
    return {
        "rps": float(rate.group(1)) if ok else 0.0,
        "p50": float(p50.group(1)) if ok else float("nan"),
        "p99": float(p99.group(1)) if ok else float("nan"),
        "errors": 0,
    }


def wanted(args, scenario: str) -> bool:
    return not args.scenario or scenario in args.scenario


def site_path(server: str, args) -> list[str]:
    """Where diorite comes from when `--site` names a build installed with
    `pip install --target` (found before the venv's)."""
    return [str(args.site)] if args.site and server == "diorite" else []


def run_server(server: str, interface: str, args) -> dict[str, dict] | None:
    port = free_port()
    cmd = command(server, interface, port)
    if cmd is None:
        return None
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join([*site_path(server, args), str(ROOT)])),
    )
    results: dict[str, dict] = {}
    try:
        wait_listening(port, proc)
        wrk(port, "/", None, 1)  # warm-up
        for name, path, script, connections in SCENARIOS:
            if not wanted(args, name):
                continue
            result = wrk(port, path, script, args.duration, connections)
            result["rss"] = tree_rss_mib(proc.pid)
            results[name] = result
        if (
            server in ("diorite", "granian", "ceiling")
            and shutil.which("h2load")
            and wanted(args, H2_SCENARIO)
        ):
            result = h2load(port, args.duration)
            result["rss"] = tree_rss_mib(proc.pid)
            results[H2_SCENARIO] = result
        if interface in ("asgi", "rsgi", "any") and wanted(args, WS_SCENARIO):
            result = wsload(port, args.duration)
            result["rss"] = tree_rss_mib(proc.pid)
            results[WS_SCENARIO] = result
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
    return results


def median(values: list[float]) -> float:
    values = [v for v in values if v == v]
    return statistics.median(values) if values else float("nan")


def write_chart(interface: str, table: dict, servers: list[str], suffix: str = "") -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("bench: matplotlib is not installed; no chart", file=sys.stderr)
        return None
    scenarios = list(table)
    fig, ax = plt.subplots(figsize=(10, 4.5))
    width = 0.8 / len(servers)
    for i, server in enumerate(servers):
        values = [table[s].get(server, {}).get("rps", 0) for s in scenarios]
        ax.bar([x + i * width for x in range(len(scenarios))], values, width, label=server)
    ax.set_xticks([x + width * (len(servers) - 1) / 2 for x in range(len(scenarios))], scenarios)
    ax.set_ylabel("requests/s, ws-echo round-trips/s (higher is better)")
    ax.set_yscale("log")
    ax.set_title(f"{interface.upper()}: one worker each, wrk -c64 / h2load -c4 -m16")
    ax.legend()
    fig.tight_layout()
    path = RESULTS / f"{interface}{suffix}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one round of 2 s each")
    parser.add_argument("--interface", choices=tuple(APPS), action="append")
    parser.add_argument(
        "--scenario",
        action="append",
        help="run only this scenario (repeatable), e.g. ws-echo or hello",
    )
    parser.add_argument("--site", type=Path, help="run diorite from this directory")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.rounds = 2, 1
    if not shutil.which("wrk"):
        sys.exit("bench: wrk is not installed (apt-get install wrk)")
    # wrk's 1,024 overload connections need more descriptors than the usual
    # soft limit of 1,024; the servers inherit the raised limit too.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    RESULTS.mkdir(parents=True, exist_ok=True)
    build_tool("ceiling")
    build_tool("wsload")
    machine = f"{os.cpu_count()} cores, Python {sys.version.split()[0]}"
    lines = [
        f"Machine: {machine}; {args.rounds} round(s) of {args.duration} s per scenario, "
        f"medians; {time.strftime('%Y-%m-%d')}. Rates are requests/s, and echo "
        "round-trips/s for ws-echo.",
        "",
        "| interface | scenario | server | rate/s | vs granian | of ceiling | p50 ms | p99 ms "
        "| RSS MiB | errors |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    ceiling_runs: dict[str, list[float]] = {}
    for interface in args.interface or list(APPS):
        servers = [
            s for s in ("diorite", "granian", "uvicorn", "gunicorn") if command(s, interface, 0)
        ]
        samples: dict[str, dict[str, list[dict]]] = {}
        for _ in range(args.rounds):
            for name, result in (run_server("ceiling", "any", args) or {}).items():
                ceiling_runs.setdefault(name, []).append(result["rps"])
            for server in servers:
                for name, result in (run_server(server, interface, args) or {}).items():
                    samples.setdefault(name, {}).setdefault(server, []).append(result)
        table = {
            scenario: {
                server: {
                    **{key: median([r[key] for r in runs]) for key in ("rps", "p50", "p99", "rss")},
                    # Summed over the rounds: one failed request is news.
                    "errors": sum(r["errors"] for r in runs),
                }
                for server, runs in by_server.items()
            }
            for scenario, by_server in samples.items()
        }
        for scenario, by_server in table.items():
            base = by_server.get("granian", {}).get("rps")
            top = median(ceiling_runs.get(scenario, []))
            for server, r in by_server.items():
                ratio = f"{r['rps'] / base:.2f}" if base else ""
                share = f"{r['rps'] / top:.0%}" if top == top and top else ""
                lines.append(
                    f"| {interface} | {scenario} | {server} | {r['rps']:,.0f} | {ratio} | "
                    f"{share} | {r['p50']:.2f} | {r['p99']:.2f} | {r['rss']:.0f} | "
                    f"{r['errors']} |"
                )
            print("\n".join(lines[-len(by_server) :]), flush=True)
        write_chart(
            interface, table, servers, suffix="-" + "-".join(args.scenario) if args.scenario else ""
        )
    for scenario, runs in ceiling_runs.items():
        lines.append(
            f"| (no Python) | {scenario} | ceiling | {median(runs):,.0f} | | 100% | | | | |"
        )
    # A partial run (--scenario) must not overwrite the full matrix.
    suffix = "-" + "-".join(args.scenario) if args.scenario else ""
    out = RESULTS / f"results{suffix}.md"
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
