"""Real framework apps: diorite against Granian, Uvicorn and Gunicorn, one
worker each, on loopback, and how much of each server's CPU time is spent
in the server itself.

    python bench/frameworks.py [--duration 5] [--rounds 3] [--rows fastapi ...]
                               [--servers diorite ...] [--site DIR]

Rows (apps in bench/apps/frameworks): FastAPI returning a pydantic model
as JSON (ASGI), a Starlette StreamingResponse of 100 chunks of 1 KiB
(ASGI), a Django view rendering a template, as WSGI and as ASGI, and a
Flask jsonify (WSGI). Servers, with harness.py's flags: diorite and
Granian for both interfaces, Uvicorn (uvloop + httptools) for ASGI,
Gunicorn (sync worker) for WSGI; the peers come from PyPI (`pip install
granian 'uvicorn[standard]' gunicorn`). Each server's answer is checked
(status and body) before it is measured; a wrong one stops the run.

For each row and server: requests/s, p50/p99 latency (wrk -t1 -c64), RSS
of the server's processes, their CPU time per request (/proc/PID/stat),
and where that CPU went: `perf record -a -F 499` during the wrk run,
without call graphs, and each sample of the server's processes counted by
the library it landed in. "Server share" is the server's own native code
(`_diorite`, `_granian`, httptools for Uvicorn) plus uvloop, the event
loop all three ASGI servers take when it is installed; "kernel" is the
kernel; the rest is the interpreter, the framework, the app and libc.

Python code of the server counts in the rest: without a call graph a
sample names the interpreter function it landed in, never the Python
function running (Python 3.12's perf trampolines show up only in call
chains, and frame-pointer chains through an interpreter built without
frame pointers break). Nor does the interpreter work a native server asks
for (building the scope or environ dict) count as the server's. So the
server share is a lower bound for every server: nearest the truth for
diorite and Granian, whose protocol handling is native; far below it for
Uvicorn, whose protocol code is Python; nothing at all for Gunicorn,
which is all Python. If perf cannot record, the share is left out and
CPU time per request is what remains.

Servers alternate within each round, in reverse order every other round;
medians are reported. `--site DIR` runs diorite from a directory a
(release) wheel was installed into (`pip install --no-deps --target DIR
diorite-*.whl`) instead of the checkout's development build. The report
goes to bench/results/frameworks-pyX.Y.md, by the Python running it (a
filtered run to a file of its own), and is printed. Run by hand, never in
tests.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import harness
import httpx
import run
from harness import RESULTS, median, tree_rss_mib
from metrics import cpu_seconds, tree
from run import ROOT, free_port, wait_listening

SERVERS = ("diorite", "granian", "uvicorn", "gunicorn")
FRAMEWORKS = ("fastapi", "pydantic", "starlette", "django", "flask")

#: Samples per second per process: a few thousand samples in a 5 s run,
#: little enough that perf's own CPU does not crowd the two that matter.
FREQUENCY = 499

#: Where each server's own native code lives (matched in a library's
#: full path).
NATIVE = {
    "diorite": ("/_diorite.",),
    "granian": ("/_granian.",),
    "uvicorn": ("/httptools/",),
    "gunicorn": (),
}
#: The event loop of every ASGI server here (each takes uvloop when it is
#: installed): it runs the server's tasks and callbacks, so it is counted
#: as the server's code, for all of them alike.
EVENT_LOOP = "/uvloop/"


@dataclass(frozen=True)
class Row:
    interface: str
    app: str
    path: str
    what: str
    check: Callable[[httpx.Response], bool]  # is this the app's answer?


def _json_is(expected: dict):
    return lambda r: r.headers.get("content-type") == "application/json" and r.json() == expected


def _items_page(r: httpx.Response) -> bool:
    return (
        r.headers.get("content-type", "").startswith("text/html")
        and "<h1>Items</h1>" in r.text
        and r.text.count("<li ") == 10
    )


def _stream(r: httpx.Response) -> bool:
    return len(r.content) == 100 * 1024 and r.content.count(b"\n") == 100


APPS = "bench.apps.frameworks"
ROWS = {
    "fastapi": Row(
        "asgi",
        f"{APPS}.fastapi_app:app",
        "/items/42",
        "FastAPI, a pydantic model as JSON",
        _json_is({"id": 42, "name": "item 42", "price": 51.5, "tags": ["tools", "garden", "sale"]}),
    ),
    "starlette-stream": Row(
        "asgi",
        f"{APPS}.starlette_app:app",
        "/stream",
        "Starlette StreamingResponse, 100 chunks of 1 KiB",
        _stream,
    ),
    "django-wsgi": Row(
        "wsgi", f"{APPS}.django_app:wsgi", "/items/", "Django template, WSGI", _items_page
    ),
    "django-asgi": Row(
        "asgi",
        f"{APPS}.django_app:asgi",
        "/items/",
        "Django template, ASGI (asgiref runs the sync view in a thread per request)",
        _items_page,
    ),
    "flask": Row(
        "wsgi",
        f"{APPS}.flask_app:app",
        "/users/42",
        "Flask jsonify",
        _json_is({"id": 42, "name": "user 42", "email": "user42@example.com", "active": True}),
    ),
}

PERF = shutil.which("perf")
#: Why perf gave no split, when it did not (shown in the report).
PERF_FAILURES: set[str] = set()


def cpu_split(data: Path, pids: list[int], server: str) -> tuple[float, float]:
    """Shares of the server processes' samples in the server's own code
    and in the kernel."""
    script = subprocess.run(
        ["perf", "script", "-i", str(data), "-F", "pid,ip,dso"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # One line per sample: "PID ADDRESS (LIBRARY)", the library by its full
    # path (uvloop's own name is only "loop.*.so").
    wanted = set(pids)
    libraries = [
        lib
        for pid_, lib in re.findall(r"^\s*(\d+)\s+\S+\s+\((.*)\)\s*$", script, re.M)
        if int(pid_) in wanted
    ]
    if not libraries:
        raise ValueError("perf recorded no samples of the server")
    own = sum(EVENT_LOOP in lib or any(p in lib for p in NATIVE[server]) for lib in libraries)
    kernel = sum(lib.startswith("[kernel") for lib in libraries)
    return own / len(libraries), kernel / len(libraries)


def start_perf(data: Path) -> subprocess.Popen:
    # The whole machine, sorted by process afterwards: `perf record -p`
    # follows only the threads alive when it starts, and Django under ASGI
    # runs each request's view in a thread of its own (asgiref), so perf
    # -p fails on threads that end while it attaches and misses the new ones.
    command = ["perf", "record", "-a", "-F", str(FREQUENCY), "-o", str(data)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def stop_perf(
    recorder: subprocess.Popen | None, data: Path, pids: list[int], server: str
) -> tuple[float, float]:
    if recorder is None:
        return float("nan"), float("nan")
    recorder.send_signal(signal.SIGINT)
    _, err = recorder.communicate()
    try:
        # perf re-raises the SIGINT it stopped on once the data is written.
        if recorder.returncode not in (0, -signal.SIGINT):
            said = [line.strip() for line in err.splitlines() if line.strip()]
            raise ValueError(" ".join(said[:2]) or f"perf exited with {recorder.returncode}")
        return cpu_split(data, pids, server)
    except (ValueError, subprocess.CalledProcessError) as exc:
        if not PERF_FAILURES:
            print(f"bench: no CPU split from perf: {exc}", file=sys.stderr)
        PERF_FAILURES.add(str(exc))
        return float("nan"), float("nan")


def measure(server: str, name: str, args, tmp: Path) -> dict:
    row = ROWS[name]
    port = free_port()
    # harness's command line ends with its own app; the flags are what we share.
    command = [*harness.command(server, row.interface, port)[:-1], row.app]
    path = [str(args.site)] if args.site and server == "diorite" else []
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([*path, str(ROOT)]))
    log = tmp / f"{server}-{name}.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err, env=env)

    def fail(problem: str):
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        sys.exit(f"bench: {server} on {name}: {problem}\n--- {server}'s log:\n{tail}")

    try:
        try:
            wait_listening(port, proc)
            answer = httpx.get(f"http://127.0.0.1:{port}{row.path}", timeout=30)
        except (RuntimeError, httpx.HTTPError) as exc:
            fail(str(exc))
        if answer.status_code != 200 or not row.check(answer):
            fail(f"wrong answer: {answer.status_code} {answer.headers} {answer.text[:300]!r}")
        harness.wrk(port, row.path, None, 1)  # warm-up
        data = tmp / "perf.data"
        before = cpu_seconds(proc.pid)
        recorder = start_perf(data) if PERF else None
        result = harness.wrk(port, row.path, None, args.duration)
        used = cpu_seconds(proc.pid) - before
        result["server"], result["kernel"] = stop_perf(recorder, data, tree(proc.pid), server)
        if result["errors"] or not result["rps"]:
            fail(f"wrk: {result['errors']} non-2xx answers, {result['rps']} requests/s")
        result["cpu_us"] = used / (result["rps"] * args.duration) * 1e6
        result["rss"] = tree_rss_mib(proc.pid)
        return result
    finally:
        run.stop(proc)


def percent(share: float) -> str:
    return f"{share:.1%}" if share == share else "n/a"


def versions(args) -> str:
    found = []
    for name in ("granian", "uvicorn", "uvloop", "httptools", "gunicorn") + FRAMEWORKS:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            pass  # a server left out with --servers need not be installed
    diorite = f"from {args.site}" if args.site else "the venv's (development build unless rebuilt)"
    return f"diorite {diorite}; {', '.join(found)}"


def table(name: str, runs: dict[str, list[dict]]) -> list[str]:
    """The report's section for one row: each server's medians."""
    row = ROWS[name]
    medians = {
        server: {key: median([r[key] for r in results]) for key in results[0]}
        for server, results in runs.items()
    }
    base = medians.get("diorite", {}).get("rps")
    lines = [
        "",
        f"## {name}: {row.what}, GET {row.path}",
        "",
        "| server | req/s | vs diorite | p50 ms | p99 ms | server share | kernel | CPU µs/req "
        "| RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for server, r in medians.items():
        ratio = f"{r['rps'] / base:.2f}" if base else ""
        # Gunicorn has no native code of its own to count.
        share = percent(r["server"]) if NATIVE[server] else "—"
        lines.append(
            f"| {server} | {r['rps']:,.0f} | {ratio} | {r['p50']:.2f} | {r['p99']:.2f} "
            f"| {share} | {percent(r['kernel'])} | {r['cpu_us']:.0f} | {r['rss']:.0f} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", choices=tuple(ROWS), action="append", help="repeatable")
    parser.add_argument("--servers", choices=SERVERS, action="append", help="repeatable")
    parser.add_argument("--site", type=Path, help="run diorite from this directory")
    args = parser.parse_args()
    if args.site:
        if not (args.site / "diorite").is_dir():
            sys.exit(f"bench: --site {args.site}: expected DIR with DIR/diorite in it")
        args.site = args.site.resolve()
    if not shutil.which("wrk"):
        sys.exit("bench: wrk is not installed (apt-get install wrk)")
    if not PERF:
        PERF_FAILURES.add("perf is not installed")
    for server in args.servers or SERVERS:
        if not (run.BIN / server).exists():
            sys.exit(f"bench: {server} is not installed in {run.BIN.parent}")
    lines = [
        "# Framework apps, one worker per server",
        "",
        f"Machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; wrk -t1 -c64, "
        f"{args.rounds} round(s) of {args.duration} s, medians; {time.strftime('%Y-%m-%d')}.",
        "",
        versions(args) + ".",
        "",
        "Server share: of the samples of the server's processes (`perf record -a -F 499`, no "
        "call graph), those in its own native code (`_diorite`, `_granian`, httptools for "
        "Uvicorn) or in uvloop (every ASGI server's event loop here); kernel: those in the "
        "kernel. Python code of the server counts in neither (see bench/frameworks.py): the "
        "share is a lower bound, far below the truth for Uvicorn and not measured for "
        "Gunicorn (—), which is all Python. CPU µs/req: CPU time of the server's processes "
        "per request, from /proc/PID/stat.",
    ]
    print("\n".join(lines), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.rows or list(ROWS):
            interface = ROWS[name].interface
            servers = [
                s
                for s in SERVERS
                if s in (args.servers or SERVERS) and harness.command(s, interface, 0)
            ]
            runs: dict[str, list[dict]] = {s: [] for s in servers}
            for round_ in range(args.rounds):
                for server in servers if round_ % 2 == 0 else servers[::-1]:
                    runs[server].append(measure(server, name, args, Path(tmp)))
            section = table(name, runs)
            print("\n".join(section), flush=True)
            lines += section
    if PERF_FAILURES:
        reasons = "; ".join(sorted(PERF_FAILURES))
        lines += ["", f"n/a: perf gave no CPU split ({reasons}); CPU µs/req does not need it."]
        print(lines[-1])
    # A filtered run must not overwrite the full report, nor one Python's
    # run another's.
    chosen = [f"py{sys.version_info[0]}.{sys.version_info[1]}"]
    chosen += (args.rows or []) + (args.servers or [])
    out = RESULTS / ("frameworks" + "".join(f"-{c}" for c in chosen) + ".md")
    out.write_text("\n".join(lines) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
