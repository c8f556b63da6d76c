"""Run the benchmarks side by side and print their medians and ratios as markdown.

    uv run python bench/run.py            # everything, 5 runs each (about 15 minutes)
    uv run python bench/run.py --quick    # 3 runs, N=1,000 only, no slow peers

Every figure is the median wall time of whole processes (start to exit, imports included),
except W4/W5, which time the build call inside the process. The peers (the original
stardag and Luigi) live in their own virtual environment, ``bench/.venv-peers``, made on
first use with uv: the original's distribution is also called ``stardag``.

The registry's benchmarks (GraphQL over HTTP, PostgreSQL and SQLite) are a separate script,
``bench/registry.py``.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from workloads.scratch import scratch

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
    venv = ["uv", "venv", "--quiet", "--python", sys.executable, str(PEERS_VENV)]
    subprocess.run(venv, check=True)
    install = ["uv", "pip", "install", "--quiet", "--compile-bytecode", "--python", PEERS_PYTHON]
    subprocess.run([*install, *PEERS], check=True)


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


def cold(
    folder: Callable[[], str], python: str, script: str, args: list[str], timeout: float
) -> Callable[[], float | None]:
    """A W1 measurement: each run builds into a fresh directory."""
    return lambda: wall([python, str(WORKLOADS / script), "w1", folder(), *args], timeout)


def warm(
    folder: Callable[[], str], python: str, script: str, args: list[str], timeout: float
) -> Callable[[], float | None]:
    """A W2 measurement: build once (untimed), then time builds that find everything done."""
    root = folder()
    if script == "luigi_workloads.py":
        setup = ["prepare", root, args[0]]
    else:
        setup = ["w1", root, args[0], *args[1:2], *(["threads"] if script == "ours.py" else [])]
    subprocess.run([python, str(WORKLOADS / script), *setup], env=ENV, check=True, timeout=900)
    return lambda: wall([python, str(WORKLOADS / script), "w2", root, *args], timeout)


def in_process(folder: Callable[[], str], command: list[str]) -> Callable[[], float | None]:
    """A W4/W5 measurement: the seconds the build call took, printed by the workload."""

    def measure() -> float | None:
        result = subprocess.run(
            [*command, folder()], env=ENV, capture_output=True, text=True, check=True
        )
        return float(result.stdout.strip().splitlines()[-1])

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

    def add(
        self, workload: str, contender: str, seconds: float | None, floor: float | None
    ) -> None:
        self.rows.append((workload, contender, seconds, floor))
        shown = "did not finish" if seconds is None else f"{seconds:.3f} s"
        print(f"  {workload:28s} {contender:42s} {shown}", file=sys.stderr, flush=True)

    def markdown(self) -> str:
        lines = ["| workload | contender | median | ratio to reference |", "|---|---|---:|---:|"]
        for workload, contender, seconds, floor in self.rows:
            shown = "did not finish" if seconds is None else f"{seconds:.3f} s"
            ratio = "" if seconds is None or floor is None else f"{seconds / floor:.2f}"
            lines.append(f"| {workload} | {contender} | {shown} | {ratio} |")
        return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 runs, N=1,000, no slow peers")
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--only", default="W1,W2,W3,W4,W5,import", help="workloads to run")
    options = parser.parse_args()
    ensure_peers()
    with scratch() as folder:
        print(benchmarks(options, folder).markdown())


def benchmarks(options: argparse.Namespace, folder: Callable[[], str]) -> Table:
    """Every workload `options` asks for, each run's outputs in a fresh `folder()`."""
    only = set(options.only.split(","))
    runs = options.runs or (3 if options.quick else 5)
    sizes = [1000] if options.quick else [1000, 10000]
    table = Table()

    def measure(workload: str, contender: str, how: Callable[[], float | None]) -> float | None:
        seconds = median_of(runs, how)
        table.add(workload, contender, seconds, floors.get(workload))
        return seconds

    floors: dict[str, float | None] = {}
    for n in sizes if "W1" in only else []:
        name = f"W1 cold, N={n:,}"
        floor = cold(folder, OURS, "floor.py", [str(n)], 120)
        floors[name] = measure(name, "plain Python (floor)", floor)
        durable = cold(folder, OURS, "floor.py", [str(n), "--durable"], 120)
        measure(name, "plain Python, durable writes", durable)
        for idiom in ("readme", "class"):
            for executor in ("threads", "inline"):
                how = cold(folder, OURS, "ours.py", [str(n), idiom, executor], 600)
                measure(name, f"stardag, {idiom} idiom, {executor}", how)
        if not options.quick or n == 1000:
            how = cold(folder, PEERS_PYTHON, "original.py", [str(n), "class"], 600)
            measure(name, "original stardag, class idiom", how)
        if n == 1000:
            how = cold(folder, PEERS_PYTHON, "original.py", [str(n), "readme"], 60)
            table.add(name, "original stardag, readme idiom (60 s cap)", how(), floors[name])
            how = cold(folder, PEERS_PYTHON, "luigi_workloads.py", [str(n)], 600)
            measure(name, "Luigi", how)

    n = sizes[-1]
    name = f"W2 warm, N={n:,}"
    if "W2" in only:
        floor = warm(folder, OURS, "floor.py", [str(n)], 60)
        floors[name] = measure(name, "plain Python (floor)", floor)
        for idiom in ("readme", "class"):
            how = warm(folder, OURS, "ours.py", [str(n), idiom], 60)
            measure(name, f"stardag, {idiom} idiom", how)
        how = warm(folder, PEERS_PYTHON, "original.py", [str(n), "class"], 600)
        measure(name, "original stardag, class idiom", how)
        measure(name, "Luigi", warm(folder, PEERS_PYTHON, "luigi_workloads.py", [str(n)], 600))

    def ids(python: str, script: str) -> Callable[[], float | None]:
        return lambda: wall([python, str(WORKLOADS / script), "w3", "10000"], 60)

    name = "W3 ids, 10,000 tasks"
    if "W3" in only:
        floors[name] = measure(name, "plain Python (floor)", ids(OURS, "floor.py"))
        measure(name, "stardag", ids(OURS, "ours.py"))
        measure(name, "original stardag", ids(PEERS_PYTHON, "original.py"))
        measure(name, "Luigi", ids(PEERS_PYTHON, "luigi_workloads.py"))

    ours = [OURS, str(WORKLOADS / "ours.py")]
    for key, name, workload, others in (
        ("W4", "W4 I/O-bound, 41 tasks (reference: inline)", "w4", {"16 threads": "threads16"}),
        (
            "W5",
            "W5 CPU-bound, 25 tasks (reference: inline)",
            "w5",
            {
                "2 processes": "processes",
                "Dask, 2 workers, cluster started by the build": "dask",
                "Dask, 2 workers, running cluster": "dask-running",
            },
        ),
    ):
        if key not in only:
            continue
        inline = in_process(folder, [*ours, workload, "inline"])
        floors[name] = measure(name, "stardag, inline", inline)
        for label, executor in others.items():
            measure(name, f"stardag, {label}", in_process(folder, [*ours, workload, executor]))

    name = "import (-X importtime total)"
    if "import" in only:
        measure(name, "import stardag_core", import_time(OURS, "stardag_core"))
        measure(name, "import stardag (original)", import_time(PEERS_PYTHON, "stardag"))
        measure(name, "import luigi", import_time(PEERS_PYTHON, "luigi"))

    return table


if __name__ == "__main__":
    main()
