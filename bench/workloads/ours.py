"""The workloads in stardag (this project), in both idioms.

python ours.py w1 ROOT N readme|class EXECUTOR   cold build of the layered DAG
python ours.py w2 ROOT N readme|class            warm: everything is complete
python ours.py w3 N                              construct 10,000 tasks, compute ids
python ours.py w4 EXECUTOR ROOT                  I/O-bound tree: prints the build seconds
python ours.py w5 EXECUTOR ROOT                  CPU-bound tasks: prints the build seconds
"""

import sys
import time

from stardag_dags import LAYERS, Gather, Leaf, Nap, Parametrized, Spin, class_idiom, readme_idiom

import stardag_core as sd
from stardag_core.executors import (
    DaskExecutor,
    Executor,
    InlineExecutor,
    ProcessExecutor,
    ThreadExecutor,
)


def executor(name: str) -> Executor:
    return {
        "inline": lambda: InlineExecutor(),
        "threads": lambda: ThreadExecutor(),
        "threads16": lambda: ThreadExecutor(16),
        "processes": lambda: ProcessExecutor(2),
        "dask": lambda: DaskExecutor(n_workers=2),
    }[name]()


def dag(idiom: str, n: int) -> list[sd.AutoTask[int]]:
    width = n // LAYERS
    return readme_idiom(width) if idiom == "readme" else list(class_idiom(width))


def main() -> None:
    command = sys.argv[1]
    if command in ("w1", "w2"):
        root, n, idiom = sys.argv[2], int(sys.argv[3]), sys.argv[4]
        with sd.use_settings(sd.Settings(target_roots={"default": root})):
            chosen = executor(sys.argv[5]) if command == "w1" else None
            summary = sd.build(*dag(idiom, n), executor=chosen, progress=False)
            summary.raise_on_failure()
            expected = (n, 0) if command == "w1" else (0, n // LAYERS)
            assert (len(summary.built), len(summary.skipped)) == expected, summary
    elif command == "w3":
        n = int(sys.argv[2])
        tasks = [
            Parametrized(index=i, label=f"node-{i}", scale=0.5, dep=Leaf(index=i)) for i in range(n)
        ]
        assert len({task.id for task in tasks}) == n
    elif command in ("w4", "w5"):
        name, root = sys.argv[2], sys.argv[3]
        with sd.use_settings(sd.Settings(target_roots={"default": root})):
            if command == "w4":
                root_task = Gather(parts=[Nap(index=i) for i in range(40)])
            else:
                root_task = Gather(parts=[Spin(index=i) for i in range(24)])
            if name == "dask-running":
                # A cluster that is already up, as a team's would be: start it untimed.
                from distributed import LocalCluster

                cluster = LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None)
                chosen: Executor = DaskExecutor(cluster.scheduler_address)
            else:
                chosen = executor(name)
            started = time.perf_counter()
            sd.build(root_task, executor=chosen, progress=False).raise_on_failure()
            print(f"{time.perf_counter() - started:.4f}")


if __name__ == "__main__":
    main()
