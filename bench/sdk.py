"""The SDK reporting to a registry: W1 (N=1,000) with no registry, with the GraphQL registry
on loopback, and with build locks, beside the plain-Python floor.

    uv run --locked --all-extras python bench/sdk.py            # 5 runs each
    uv run --locked --all-extras python bench/sdk.py --quick    # 1 run each, N=200

The registry (`stardag serve`, embedded SQLite, local mode) runs in its own process, as it
would for a user; each build runs in a fresh process with a fresh output directory and
outbox. The table gives medians of the build's own time (what a user waits for) and of the
time until the registry had every report, with their ratios to the build without a registry.
"""

import argparse
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).parent
WORKLOADS = HERE / "workloads"
MODES = ("none", "registry", "locks")


@contextlib.contextmanager
def registry_server(directory: Path) -> Iterator[str]:
    """`stardag serve` on a free port and a fresh SQLite file; yields its URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    environment = {
        **os.environ,
        "STARDAG_DATABASE_URL": f"sqlite+aiosqlite:///{directory / 'registry.db'}",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "stardag_core", "serve", "--port", str(port)],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/healthz", timeout=1):
                break
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the registry did not start")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait()


def workspace_of(url: str) -> str:
    request = urllib.request.Request(
        f"{url}/graphql",
        data=json.dumps({"query": "{ organizations { workspaces { id } } }"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request) as response:
        data = json.load(response)["data"]
    return str(data["organizations"][0]["workspaces"][0]["id"])


def floor_seconds(n: int) -> float:
    with tempfile.TemporaryDirectory() as root:
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, str(WORKLOADS / "floor.py"), "w1", root, str(n), "--durable"],
            check=True,
        )
        return time.perf_counter() - started


def build_seconds(n: int, mode: str, url: str, workspace: str) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as scratch:
        arguments = [f"{scratch}/out", str(n), mode, url, workspace, f"{scratch}/outbox.db"]
        done = subprocess.run(
            [sys.executable, str(WORKLOADS / "reporting.py"), *arguments],
            check=True,
            capture_output=True,
            text=True,
            cwd=WORKLOADS,
        )
    built, reported = done.stdout.split()
    return float(built), float(reported)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one run each, N=200")
    parser.add_argument("--runs", type=int, default=None)
    args = parser.parse_args()
    n = 200 if args.quick else 1000
    runs = args.runs or (1 if args.quick else 5)
    builds: dict[str, list[float]] = {mode: [] for mode in MODES}
    reports: dict[str, list[float]] = {mode: [] for mode in MODES}
    floors: list[float] = []
    with tempfile.TemporaryDirectory() as directory, registry_server(Path(directory)) as url:
        workspace = workspace_of(url)
        for _ in range(runs):  # interleaved, so that drift hits every contender alike
            floors.append(floor_seconds(n))
            for mode in MODES:
                built, reported = build_seconds(n, mode, url, workspace)
                builds[mode].append(built)
                reports[mode].append(reported)
    baseline = statistics.median(builds["none"])
    print(f"W1 N={n}, class idiom, thread executor; medians of {runs} run(s)\n")
    print("| contender | build (s) | ratio | until reported (s) | ratio |")
    print("|---|---|---|---|---|")
    floor = statistics.median(floors)
    print(f"| plain-Python floor (whole process) | {floor:.3f} | {floor / baseline:.2f} | | |")
    names = {"none": "no registry", "registry": "GraphQL registry", "locks": "registry + locks"}
    for mode in MODES:
        built = statistics.median(builds[mode])
        reported = statistics.median(reports[mode])
        print(
            f"| {names[mode]} | {built:.3f} | {built / baseline:.2f} | {reported:.3f} "
            f"| {reported / baseline:.2f} |"
        )


if __name__ == "__main__":
    main()
