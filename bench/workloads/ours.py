"""The workloads in stardag (this project), in both idioms.

    python ours.py w1 ROOT N readme|class EXECUTOR   cold build of the layered DAG
    python ours.py w2 ROOT N readme|class            warm: everything is complete
    python ours.py w3 N                              construct 10,000 tasks, compute ids
    python ours.py w4 EXECUTOR ROOT                  I/O-bound tree: prints the build seconds
    python ours.py w5 EXECUTOR ROOT                  CPU-bound tasks: prints the build seconds
"""

import sys
import time

import stardag_core as sd
from stardag_core.executors import (
    DaskExecutor,
    Executor,
    InlineExecutor,
    ProcessExecutor,
    ThreadExecutor,
)

LAYERS = 20


@sd.task
def source(index: int) -> int:
    return index


@sd.task
def combine(left: sd.Depends[int], right: sd.Depends[int]) -> int:
    return (left + right) % 1000


def readme_idiom(width: int) -> list[sd.AutoTask[int]]:
    layer = [source(index=i) for i in range(width)]
    for _ in range(1, LAYERS):
        layer = [combine(left=layer[i], right=layer[(i + 1) % width]) for i in range(width)]
    return layer


class Node(sd.AutoTask[int]):
    layer: int
    index: int
    width: int

    def requires(self) -> list["Node"]:
        if self.layer == 0:
            return []
        below = self.layer - 1
        return [
            Node(layer=below, index=self.index, width=self.width),
            Node(layer=below, index=(self.index + 1) % self.width, width=self.width),
        ]

    def run(self) -> None:
        if self.layer == 0:
            self.output().save(self.index)
            return
        left, right = self.requires()
        self.output().save((left.load() + right.load()) % 1000)


def class_idiom(width: int) -> list[Node]:
    return [Node(layer=LAYERS - 1, index=i, width=width) for i in range(width)]


class Leaf(sd.AutoTask[int]):
    index: int

    def run(self) -> None:
        self.output().save(self.index)


class Parametrized(sd.AutoTask[int]):
    index: int
    label: str
    scale: float
    dep: sd.TaskLoads[int]

    def run(self) -> None:
        self.output().save(self.index)


class Nap(sd.AutoTask[int]):
    index: int

    def run(self) -> None:
        time.sleep(0.1)
        self.output().save(self.index)


class Gather(sd.AutoTask[int]):
    parts: list[sd.TaskLoads[int]]

    def run(self) -> None:
        self.output().save(sum(part.load() for part in self.parts))


class Spin(sd.AutoTask[int]):
    index: int

    def run(self) -> None:
        total = self.index
        for i in range(1_600_000):  # about 0.2 s of pure Python here
            total = (total * 31 + i) % 1_000_003
        self.output().save(total)


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
                root_task = Gather(parts=[Spin(index=i) for i in range(8)])
            started = time.perf_counter()
            sd.build(root_task, executor=executor(name), progress=False).raise_on_failure()
            print(f"{time.perf_counter() - started:.4f}")


if __name__ == "__main__":
    main()
