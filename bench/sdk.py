"""The SDK reporting to a registry: W1 (N=1,000) with no registry, with the GraphQL registry
on loopback, and with build locks, beside the plain-Python floor.

    uv run --locked --all-extras python bench/sdk.py            # 5 runs each
    uv run --locked --all-extras python bench/sdk.py --quick    # 1 run each, N=200
    uv run --locked --all-extras python bench/sdk.py --scratch /dev/shm   # outputs in memory

The registry (`stardag serve`, embedded SQLite, local mode) runs in its own process, as it
would for a user; each build runs in a fresh process with a fresh output directory and
outbox, in the environment a user gets from `pip install stardag[registry]`: `bench/.venv-sdk`,
made on first use with the locked versions and this checkout installed in editable mode. The
development environment holds more packages, which the client's imports pick up when present
(selenium brings trio, which httpcore imports: 0.1 s). The table gives medians of the build's
own time (what a user waits for) and of the time until the registry had every report, with
their ratios to the build without a registry. The outputs and outboxes go to `--scratch`
(default: the system's temporary folder); on a RAM disk, the builds make no disk I/O, which
on this machine's disk costs more CPU than the build's Python, and the registry's share shows.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from workloads.serving import stardag_server

HERE = Path(__file__).parent
WORKLOADS = HERE / "workloads"
USER_VENV = HERE / ".venv-sdk"
USER_PYTHON = USER_VENV / "bin" / "python"
MODES = ("none", "registry", "locks")


def workspace_of(url: str) -> str:
    request = urllib.request.Request(
        f"{url}/graphql",
        data=json.dumps({"query": "{ organizations { workspaces { id } } }"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request) as response:
        data = json.load(response)["data"]
    return str(data["organizations"][0]["workspaces"][0]["id"])


def ensure_user_environment() -> None:
    """`bench/.venv-sdk`: stardag with its `registry` extra and nothing else, at the locked
    versions."""
    if USER_PYTHON.exists():
        return
    project = HERE.parent
    locked = subprocess.run(
        ["uv", "export", "--locked", "--no-dev", "--extra", "registry", "--no-emit-project"],
        cwd=project,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    subprocess.run(
        ["uv", "venv", "--quiet", "--python", sys.executable, str(USER_VENV)], check=True
    )
    install = [
        "uv",
        "pip",
        "install",
        "--quiet",
        "--compile-bytecode",
        "--python",
        str(USER_PYTHON),
    ]
    subprocess.run([*install, "-r", "-"], input=locked, text=True, check=True)
    subprocess.run([*install, "--no-deps", "--editable", str(project)], check=True)


def floor_seconds(n: int, scratch: str | None) -> float:
    with tempfile.TemporaryDirectory(dir=scratch) as root:
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, str(WORKLOADS / "floor.py"), "w1", root, str(n), "--durable"],
            check=True,
        )
        return time.perf_counter() - started


def build_seconds(
    n: int, mode: str, url: str, workspace: str, scratch: str | None
) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(dir=scratch) as folder:
        arguments = [f"{folder}/out", str(n), mode, url, workspace, f"{folder}/outbox.db"]
        done = subprocess.run(
            [str(USER_PYTHON), str(WORKLOADS / "reporting.py"), *arguments],
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
    parser.add_argument("--scratch", default=None, help="where outputs and outboxes go")
    args = parser.parse_args()
    n = 200 if args.quick else 1000
    runs = args.runs or (1 if args.quick else 5)
    builds: dict[str, list[float]] = {mode: [] for mode in MODES}
    reports: dict[str, list[float]] = {mode: [] for mode in MODES}
    floors: list[float] = []
    ensure_user_environment()
    with (
        tempfile.TemporaryDirectory() as directory,
        stardag_server("serve", Path(directory)) as url,
    ):
        workspace = workspace_of(url)
        # Interleaved, in an order that turns each round, so that drift (this machine's disk
        # slows down and speeds up over minutes) hits every contender alike.
        for round_ in range(runs):
            floors.append(floor_seconds(n, args.scratch))
            for mode in MODES[round_ % 3 :] + MODES[: round_ % 3]:
                built, reported = build_seconds(n, mode, url, workspace, args.scratch)
                builds[mode].append(built)
                reports[mode].append(reported)
    baseline = statistics.median(builds["none"])
    where = args.scratch or tempfile.gettempdir()
    print(f"W1 N={n}, class idiom, thread executor, outputs in {where}; medians of {runs} run(s)")
    print("(paired: the median of each round's ratio to that round's build without a registry)\n")
    print("| contender | build (s) | ratio | paired ratio | until reported (s) | ratio |")
    print("|---|---|---|---|---|---|")
    floor = statistics.median(floors)
    print(f"| plain-Python floor (whole process) | {floor:.3f} | {floor / baseline:.2f} | | | |")
    names = {"none": "no registry", "registry": "GraphQL registry", "locks": "registry + locks"}
    for mode in MODES:
        built = statistics.median(builds[mode])
        reported = statistics.median(reports[mode])
        paired = statistics.median(
            b / none for b, none in zip(builds[mode], builds["none"], strict=True)
        )
        print(
            f"| {names[mode]} | {built:.3f} | {built / baseline:.2f} | {paired:.2f} "
            f"| {reported:.3f} | {reported / baseline:.2f} |"
        )


if __name__ == "__main__":
    main()
