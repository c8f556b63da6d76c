"""Run the benchmarks side by side and print their medians and ratios as markdown.

    uv run python bench/run.py            # everything, 5 runs each (about 15 minutes)
    uv run python bench/run.py --quick    # 3 runs, N=1,000 only, no slow peers

Every figure is the median wall time of whole processes (start to exit, imports included),
except W4/W5, which time the build call inside the process. The peers (the original
stardag and Luigi) live in their own virtual environment, ``bench/.venv-peers``, made on
first use with uv: the original's distribution is also called ``stardag``.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).parent
WORKLOADS = HERE / "workloads"
PEERS_VENV = HERE / ".venv-peers"
PEERS = ["stardag==0.28.0", "luigi==3.8.1"]
OURS = sys.executable
PEERS_PYTHON = str(PEERS_VENV / "bin" / "python")
# Bytecode is written on the warm-up run, as it is on any user's machine.
ENV = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
ENV["PYTHONPATH"] = str(WORKLOADS)


def ensure_peers() -> None:
    if Path(PEERS_PYTHON).exists():
        return
    subprocess.run(["uv", "venv", "--quiet", "--python", sys.executable, str(PEERS_VENV)], check=True)
    subprocess.run(
        ["uv", "pip", "install", "--quiet", "--compile-bytecode", "--python", PEERS_PYTHON, *PEERS],
        check=True,
    )


def wall(command: list[str], timeout: float) -> float | None:
    """Seconds the process took, or None if it failed or ran out of time."""
    started = time.perf_counter()
    try:
        result = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    if result.returncode != 0:
        print(f"  FAILED: {' '.join(command)}\n{result.stderr[-2000:]}", file=sys.stderr)
        return None
    return time.perf_counter() - started


def median_of(runs: int, measure: Callable[[], float | None]) -> float | None:
    measure()  # warm-up: bytecode, page cache
    samples = []
    for _ in range(runs):
        sample = measure()
        if sample is None:
            return None
        samples.append(sample)
    return statistics.median(samples)


def cold(python: str, script: str, args: list[str], timeout: float) -> Callable[[], float | None]:
    """A W1 measurement: each run builds into a fresh directory."""

    def measure() -> float | None:
        root = tempfile.mkdtemp(prefix="stardag-bench-")
        try:
            return wall([python, str(WORKLOADS / script), "w1", root, *args], timeout)
        finally:
            shutil.rmtree(root, ignore_errors=True)

    return measure


def warm(python: str, script: str, args: list[str], timeout: float) -> Callable[[], float | None]:
    """A W2 measurement: build once (untimed), then time builds that find everything done."""
    root = tempfile.mkdtemp(prefix="stardag-bench-")
    build_args = [args[0], *args[1:2], *(["threads"] if script == "ours.py" else [])]
    subprocess.run(
        [python, str(WORKLOADS / script), "w1", root, *build_args], env=ENV, check=True, timeout=600
    )
    return lambda: wall([python, str(WORKLOADS / script), "w2", root, *args], timeout)


def in_process(command: list[str]) -> Callable[[], float | None]:
    """A W4/W5 measurement: the seconds the build call took, printed by the workload."""

    def measure() -> float | None:
        root = tempfile.mkdtemp(prefix="stardag-bench-")
        try:
            result = subprocess.run(
                [*command, root], env=ENV, capture_output=True, text=True, check=True
            )
            return float(result.stdout.strip().splitlines()[-1])
        finally:
            shutil.rmtree(root, ignore_errors=True)

    return measure


def import_time(python: str, module: str) -> Callable[[], float | None]:
    def measure() -> float | None:
        result = subprocess.run(
            [python, "-X", "importtime", "-c", f"import {module}"],
            env=ENV,
            capture_output=True,
            text=True,
            check=True,
        )
        return int(result.stderr.strip().splitlines()[-1].split("|")[1]) / 1e6

    return measure


class Table:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, float | None, float | None]] = []

    def add(self, workload: str, contender: str, seconds: float | None, floor: float | None) -> None:
        self.rows.append((workload, contender, seconds, floor))
        shown = "did not finish" if seconds is None else f"{seconds:.3f} s"
        print(f"  {workload:28s} {contender:42s} {shown}", file=sys.stderr, flush=True)

    def markdown(self) -> str:
        lines = ["| workload | contender | median | × floor |", "|---|---|---:|---:|"]
        for workload, contender, seconds, floor in self.rows:
            shown = "did not finish" if seconds is None else f"{seconds:.3f} s"
            ratio = "" if seconds is None or floor is None else f"{seconds / floor:.2f}"
            lines.append(f"| {workload} | {contender} | {shown} | {ratio} |")
        return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 runs, N=1,000, no slow peers")
    parser.add_argument("--runs", type=int, default=None)
    options = parser.parse_args()
    runs = options.runs or (3 if options.quick else 5)
    sizes = [1000] if options.quick else [1000, 10000]
    ensure_peers()
    table = Table()

    for n in sizes:
        name = f"W1 cold, N={n:,}"
        floor = median_of(runs, cold(OURS, "floor.py", [str(n)], 120))
        table.add(name, "plain Python (floor)", floor, floor)
        table.add(name, "plain Python, durable writes", median_of(runs, cold(OURS, "floor.py", [str(n), "--durable"], 120)), floor)
        for idiom in ("readme", "class"):
            for executor in ("threads", "inline"):
                seconds = median_of(runs, cold(OURS, "ours.py", [str(n), idiom, executor], 600))
                table.add(name, f"stardag, {idiom} idiom, {executor}", seconds, floor)
        if not options.quick or n == 1000:
            table.add(name, "original stardag, class idiom", median_of(runs, cold(PEERS_PYTHON, "original.py", [str(n), "class"], 600)), floor)
        if n == 1000:
            table.add(name, "original stardag, readme idiom (60 s cap)", median_of(1, cold(PEERS_PYTHON, "original.py", [str(n), "readme"], 60)), floor)
            table.add(name, "Luigi", median_of(runs, cold(PEERS_PYTHON, "luigi_workloads.py", [str(n)], 600)), floor)

    n = sizes[-1]
    name = f"W2 warm, N={n:,}"
    floor = median_of(runs, warm(OURS, "floor.py", [str(n)], 60))
    table.add(name, "plain Python (floor)", floor, floor)
    for idiom in ("readme", "class"):
        table.add(name, f"stardag, {idiom} idiom", median_of(runs, warm(OURS, "ours.py", [str(n), idiom], 60)), floor)
    table.add(name, "original stardag, class idiom", median_of(runs, warm(PEERS_PYTHON, "original.py", [str(n), "class"], 600)), floor)
    table.add(name, "Luigi", median_of(runs, warm(PEERS_PYTHON, "luigi_workloads.py", [str(n)], 600)), floor)

    name = "W3 ids, 10,000 tasks"
    floor = median_of(runs, lambda: wall([OURS, str(WORKLOADS / "floor.py"), "w3", "10000"], 60))
    table.add(name, "plain Python (floor)", floor, floor)
    table.add(name, "stardag", median_of(runs, lambda: wall([OURS, str(WORKLOADS / "ours.py"), "w3", "10000"], 60)), floor)
    table.add(name, "original stardag", median_of(runs, lambda: wall([PEERS_PYTHON, str(WORKLOADS / "original.py"), "w3", "10000"], 60)), floor)
    table.add(name, "Luigi", median_of(runs, lambda: wall([PEERS_PYTHON, str(WORKLOADS / "luigi_workloads.py"), "w3", "10000"], 60)), floor)

    ours = [OURS, str(WORKLOADS / "ours.py")]
    name = "W4 I/O-bound, 41 tasks"
    inline = median_of(runs, in_process([*ours, "w4", "inline"]))
    table.add(name, "stardag, inline (build call)", inline, inline)
    table.add(name, "stardag, 16 threads (build call)", median_of(runs, in_process([*ours, "w4", "threads16"])), inline)
    name = "W5 CPU-bound, 9 tasks"
    inline = median_of(runs, in_process([*ours, "w5", "inline"]))
    table.add(name, "stardag, inline (build call)", inline, inline)
    table.add(name, "stardag, 2 processes (build call)", median_of(runs, in_process([*ours, "w5", "processes"])), inline)
    table.add(name, "stardag, Dask 2 workers (build call)", median_of(runs, in_process([*ours, "w5", "dask"])), inline)

    name = "import (-X importtime total)"
    ours_import = median_of(runs, import_time(OURS, "stardag_core"))
    table.add(name, "import stardag_core", ours_import, None)
    table.add(name, "import stardag (original)", median_of(runs, import_time(PEERS_PYTHON, "stardag")), None)
    table.add(name, "import luigi", median_of(runs, import_time(PEERS_PYTHON, "luigi")), None)

    print(table.markdown())


if __name__ == "__main__":
    main()
