"""A long mixed load against one diorite worker, watching for leaks.

    python bench/soak.py [--duration 600] [--diorite-python .venv/bin/python]
        [--label py3.11] [--interval 5]

One diorite process serves bench/apps/probe_app.py (ASGI) while this
script keeps up, at once: keep-alive HTTP/1.1 requests, HTTP/2 requests
(h2c), streamed responses dropped half-way (over both), websockets opened,
used and dropped (half closed properly, half cut off), slow readers of a
4 MiB response, and 4 MiB uploads. Every --interval seconds it samples the
server's RSS, open file descriptors and threads from /proc. At the end it
stops the load, waits for the server to settle, samples once more, and
reports requests, errors, the RSS slope over the second half (least
squares), fds and threads at start and end, and any line with "panic" in
the server's log. Results: bench/results/soak-LABEL.{csv,png,md}.

Needs httpx[http2], websockets and (for the PNG) matplotlib in the Python
that runs it; the .venv of `make build` has all but matplotlib.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import datetime
import os
import platform
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import websockets
from run import free_port

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
APP = "bench.apps.probe_app:app"
UPLOAD = b"u" * (4 << 20)
FORBIDDEN = ("panic", "Cannot drop pointer", "Cannot clone pointer", "Fatal Python error")


def proc_stats(pid: int) -> tuple[int, int, int]:
    """RSS in KiB, open fds, threads."""
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return rss, len(os.listdir(f"/proc/{pid}/fd")), len(os.listdir(f"/proc/{pid}/task"))


def slope_kib_per_min(points: list[tuple[float, int]]) -> tuple[float, float]:
    """Least-squares slope of (seconds, KiB) points and its standard error,
    both in KiB per minute: RSS swings by megabytes with every 4 MiB
    body, so a slope means little without its error."""
    n = len(points)
    if n < 3:
        return float("nan"), float("nan")
    mt = sum(t for t, _ in points) / n
    mr = sum(r for _, r in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    slope = sum((t - mt) * (r - mr) for t, r in points) / var
    residuals = sum((r - mr - slope * (t - mt)) ** 2 for t, r in points)
    return 60 * slope, 60 * (residuals / (n - 2) / var) ** 0.5


class Load:
    """The client side: one coroutine per kind of traffic, all counting."""

    def __init__(self, port: int):
        self.base = f"http://127.0.0.1:{port}"
        self.port = port
        self.done = Counter()
        self.errors = Counter()
        self.last_error: dict[str, str] = {}
        self.stop = asyncio.Event()

    async def loop(self, kind: str, step) -> None:
        while not self.stop.is_set():
            try:
                await step()
                self.done[kind] += 1
            except Exception as err:
                self.errors[kind] += 1
                self.last_error[kind] = f"{type(err).__name__}: {err}"[:200]
                await asyncio.sleep(0.1)

    def check(self, response: httpx.Response) -> None:
        if response.status_code != 200:
            raise RuntimeError(f"status {response.status_code}")

    async def run(self) -> None:
        h1 = httpx.AsyncClient(base_url=self.base, timeout=30)
        h2 = httpx.AsyncClient(base_url=self.base, timeout=30, http1=False, http2=True)
        # Streams dropped half-way get a connection of their own: httpx's
        # HTTP/2 connection stalls now and then after many of them (30 s
        # read timeouts on every stream at once, against Granian too), and
        # that must not count against the plain requests.
        h2_dropped = httpx.AsyncClient(base_url=self.base, timeout=30, http1=False, http2=True)
        flip = [False]

        async def get(client, path):
            self.check(await client.get(path))

        async def cancelled_stream():
            # Alternates HTTP/1.1 and HTTP/2, so both ways of dropping a
            # response (closing the connection, RST_STREAM) are exercised.
            flip[0] = not flip[0]
            async with (h1 if flip[0] else h2_dropped).stream("GET", "/sse") as response:
                self.check(response)
                read = 0
                async for chunk in response.aiter_raw():
                    read += len(chunk)
                    if read > 64 << 10:
                        break

        async def websocket():
            async with websockets.connect(f"ws://127.0.0.1:{self.port}/ws") as ws:
                for i in range(10):
                    await ws.send(f"message {i}")
                    await ws.recv()
                if self.done["websocket"] % 2:
                    ws.transport.abort()

        async def slow_reader():
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            try:
                writer.write(b"GET /4m HTTP/1.1\r\nHost: soak\r\n\r\n")
                for _ in range(20):
                    if not await reader.read(64 << 10):
                        raise RuntimeError("closed early")
                    await asyncio.sleep(0.1)
            finally:
                writer.transport.abort()

        async def upload():
            response = await h1.post("/drain", content=UPLOAD)
            self.check(response)
            if response.text != str(len(UPLOAD)):
                raise RuntimeError(f"app read {response.text} bytes")

        kinds = {
            "http1": lambda: get(h1, "/json"),
            "http1-hello": lambda: get(h1, "/"),
            "http2": lambda: get(h2, "/json"),
            "http2-hello": lambda: get(h2, "/"),
            "stream-cancelled": cancelled_stream,
            "websocket": websocket,
            "slow-reader": slow_reader,
            "upload-4m": upload,
        }
        try:
            await asyncio.gather(*(self.loop(k, step) for k, step in kinds.items()))
        finally:
            for client in (h1, h2, h2_dropped):
                await client.aclose()


async def soak(pid: int, port: int, duration: float, interval: float) -> tuple[Load, list]:
    load = Load(port)
    start = time.monotonic()
    samples = [(0.0, *proc_stats(pid), 0)]
    runner = asyncio.create_task(load.run())
    while time.monotonic() - start < duration:
        await asyncio.sleep(interval)
        if runner.done():
            break
        samples.append((time.monotonic() - start, *proc_stats(pid), sum(load.done.values())))
        print(f"{samples[-1]}", file=sys.stderr, flush=True)
    load.stop.set()
    await runner
    return load, samples


def plot(samples: list, path: Path, title: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("soak: no matplotlib, no plot", file=sys.stderr)
        return
    minutes = [s[0] / 60 for s in samples]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    top.plot(minutes, [s[1] / 1024 for s in samples])
    top.set_ylabel("RSS (MiB)")
    top.set_title(title)
    bottom.plot(minutes, [s[2] for s in samples], label="open fds")
    bottom.plot(minutes, [s[3] for s in samples], label="threads")
    bottom.set_xlabel("minutes")
    bottom.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=600)
    parser.add_argument("--interval", type=float, default=5)
    parser.add_argument("--diorite-python", default=str(ROOT / ".venv" / "bin" / "python"))
    parser.add_argument("--label", default=f"py{sys.version_info[0]}.{sys.version_info[1]}")
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    port = free_port()
    log_path = RESULTS / f"soak-{args.label}.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [
                args.diorite_python,
                "-m",
                "diorite",
                "--interface",
                "asgi",
                "--port",
                str(port),
                "--workers",
                "1",
                "--log-level",
                "warning",
                APP,
            ],  # fmt: skip
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
        )
        try:
            wait_answering(port, server)
            load, samples = asyncio.run(soak(server.pid, port, args.duration, args.interval))
            # Connections the load left behind get time to close before
            # the last sample: what stays is what leaked.
            time.sleep(5)
            settled = proc_stats(server.pid)
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(30)
    report(args, load, samples, settled, log_path)


def wait_answering(port: int, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"diorite exited with {server.returncode}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit("diorite did not start")


def report(args, load: Load, samples: list, settled: tuple, log_path: Path) -> None:
    # Not with_suffix: the label has a dot of its own (py3.11).
    base = RESULTS / f"soak-{args.label}"
    csv_path, md_path, png_path = (Path(f"{base}.{ext}") for ext in ("csv", "md", "png"))
    with open(csv_path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["seconds", "rss_kib", "fds", "threads", "requests"])
        out.writerows((f"{t:.1f}", *rest) for t, *rest in samples)
    half = [(t, rss) for t, rss, *_ in samples if t >= samples[-1][0] / 2]
    slope, error = slope_kib_per_min(half)
    version = subprocess.run(
        [args.diorite_python, "-c", "import sys, diorite; print(diorite.__version__, sys.version)"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    panics = [
        line for line in log_path.read_text(errors="replace").splitlines() if any(
            bad.lower() in line.lower() for bad in FORBIDDEN)
    ]  # fmt: skip
    rss = [s[1] for s in samples]
    lines = [
        f"Soak {datetime.date.today()}, {args.duration:.0f} s, one diorite worker "
        f"(diorite {version.split()[0] if version else '?'}, dev build, "
        f"Python {version.split()[1] if version else '?'}), {os.cpu_count()} cores "
        f"{platform.machine()}, client and server on the same machine.",
        "",
        "| traffic | done | errors |",
        "|---|---|---|",
        *(f"| {k} | {load.done[k]} | {load.errors[k]} |" for k in sorted(load.done | load.errors)),
        f"| **all** | {sum(load.done.values())} | {sum(load.errors.values())} |",
        "",
        f"* RSS: {rss[0] / 1024:.1f} MiB at start, {max(rss) / 1024:.1f} MiB at most, "
        f"{rss[-1] / 1024:.1f} MiB at the end of the load, {settled[0] / 1024:.1f} MiB "
        "5 s after it.",
        f"* RSS slope over the second half: **{slope:+.1f} ± {error:.1f} KiB/min** "
        f"(least squares and its standard error, {len(half)} samples).",
        f"* Open fds: {samples[0][2]} at start, {samples[-1][2]} under load at the end, "
        f"{settled[1]} after it.",
        f"* Threads: {samples[0][3]} at start, {samples[-1][3]} at the end, {settled[2]} after.",
        f"* Server log lines with panic or ownership errors: {len(panics)}.",
        *(f"  * `{line}`" for line in panics[:10]),
        *(f"* Last {k} error: `{e}`" for k, e in sorted(load.last_error.items())),
    ]
    text = "\n".join(lines) + "\n"
    md_path.write_text(text)
    plot(samples, png_path, f"diorite soak, {args.label}")
    print(text)


if __name__ == "__main__":
    main()
