"""Static files: diorite against Granian's static serving and nginx, one
worker each, with wrk, for a 4 KiB and a 1 MiB file.

    python bench/static.py [--duration 5] [--rounds 3] [--connections 64] [--pin]
                           [--site DIR] [--build NAME=DIR] [--out bench/results/static.md]

Each server serves the same directory under /static (the app behind it,
examples.hello_asgi, is never called). nginx (Debian's, `apt-get install
nginx`) runs in the foreground with a config of its own on a free port: one
worker process, `sendfile on`, access log off, the same one-day expiry as
the others. Servers alternate round by round, as in run.py; the report gives
each one's median requests/s and the ratios. A measurement to run by hand,
never a test.

`--site DIR` runs diorite from a directory a (release) wheel was installed
into (`pip install --no-deps --target DIR diorite-*.whl`) rather than from the
checkout's development build; `--build NAME=DIR` (repeatable) measures
another such build in the same run, alongside, as run.py's `--build` does.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import run
from run import BIN, ROOT, free_port, wait_listening, wrk

APP = "examples.hello_asgi:app"
FILES = {"4k": 4 * 1024, "1m": 1024 * 1024}
SERVERS = ("diorite", "granian", "nginx")

# Where each diorite build is imported from: "diorite" (the one compared
# with the others) and any --build NAME.
SITES: dict[str, Path] = {}

NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    include /etc/nginx/mime.types;
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location /static/ {{
            alias {mount}/;
            expires 1d;
        }}
    }}
}}
"""


def command(server: str, port: int, mount: Path, tmp: Path) -> list[str]:
    static = ["--static-path-route", "/static", "--static-path-mount", str(mount)]
    common = ["--interface", "asgi", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    if server == "diorite" or server in SITES:
        # pip install --target puts the wheel's script in DIR/bin.
        script = SITES[server] / "bin" / "diorite" if server in SITES else None
        exe = script if script and script.exists() else BIN / "diorite"
        return [str(exe), *common, "--log-level", "warning", *static, APP]
    if server == "granian":
        return [str(BIN / "granian"), *common, "--log-level", "warning", *static, APP]
    conf = tmp / f"nginx-{port}.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, port=port, mount=mount))
    return ["nginx", "-p", str(tmp), "-c", str(conf)]


def pythonpath(server: str) -> list[str]:
    return ([str(SITES[server])] if server in SITES else []) + [str(ROOT)]


def measure(server: str, name: str, mount: Path, tmp: Path, args) -> float:
    port = free_port()
    proc = subprocess.Popen(
        [*run.PIN_SERVER, *command(server, port, mount, tmp)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join(pythonpath(server))),
    )
    path = f"/static/{name}.bin"
    try:
        wait_listening(port, proc)
        wrk(port, 1, args.connections, path)  # warm-up
        return wrk(port, args.duration, args.connections, path)
    finally:
        # SIGQUIT is nginx's graceful stop; the others stop on SIGINT.
        run.stop(proc, signal.SIGQUIT if server == "nginx" else signal.SIGINT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    run.common_arguments(parser)
    parser.add_argument("--out", type=Path, help="also write the report here (Markdown)")
    parser.add_argument("--site", type=Path, help="run diorite from this directory")
    parser.add_argument(
        "--build",
        action="append",
        default=[],
        metavar="NAME=SITE_DIR",
        help="another diorite build to measure in the same run (repeatable)",
    )
    args = parser.parse_args()
    for name, site in [("diorite", args.site), *(b.partition("=")[::2] for b in args.build)]:
        if site is None:
            continue
        if not name or name in SERVERS[1:] or not (Path(site) / "diorite").is_dir():
            sys.exit(f"bench: {name}={site}: expected NAME=DIR with DIR/diorite in it")
        SITES[name] = Path(site).resolve()
    servers = ("diorite", *(s for s in SITES if s != "diorite"), *SERVERS[1:])
    for tool in ("wrk", "nginx"):
        if not shutil.which(tool):
            sys.exit(f"bench: {tool} is not installed (apt-get install {tool})")
    if not (BIN / "granian").exists():
        sys.exit("bench: granian is not installed (pip install granian)")
    if args.pin:
        run.PIN_SERVER[:] = ["taskset", "-c", "1"]
        run.PIN_CLIENT[:] = ["taskset", "-c", "0"]
    version = subprocess.run(
        [str(BIN / "granian"), "--version"], capture_output=True, text=True
    ).stdout.strip()
    nginx = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip()
    lines = [
        f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, {version}, "
        f"{nginx.removeprefix('nginx version: ')}; wrk -t1 -c{args.connections} "
        f"-d{args.duration}s, {args.rounds} rounds, medians"
        + (", server and wrk pinned to one core each" if args.pin else ""),
        "",
        "| file | "
        + " | ".join(f"{s} req/s" for s in servers)
        + " | diorite/granian | diorite/nginx |",
        "|---" * (len(servers) + 3) + "|",
    ]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        # nginx's worker runs as an unprivileged user: it must reach the files.
        tmp.chmod(0o755)
        mount = tmp / "public"
        mount.mkdir()
        for name, size in FILES.items():
            (mount / f"{name}.bin").write_bytes(os.urandom(size))
        for name in FILES:
            results: dict[str, list[float]] = {s: [] for s in servers}
            for _ in range(args.rounds):
                for server in servers:
                    results[server].append(measure(server, name, mount, tmp, args))
            medians = {s: statistics.median(results[s]) for s in servers}
            d, g, n = (medians[s] for s in SERVERS)
            cells = " | ".join(f"{medians[s]:,.0f}" for s in servers)
            lines.append(f"| {name} | {cells} | {d / g:.2f} | {d / n:.2f} |")
            print(lines[-1], flush=True)
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        args.out.write_text(report)


if __name__ == "__main__":
    main()
