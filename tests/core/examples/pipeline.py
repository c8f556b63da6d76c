"""Importable tasks for executor tests: worker processes must find these classes."""

import logging
import os
import sys
import time
from collections.abc import Generator

import stardag_core as sd

sd.namespace("examples.pipeline")


class Number(sd.AutoTask[int]):
    value: int

    def run(self) -> None:
        self.output().save(self.value)


class Add(sd.AutoTask[int]):
    left: sd.TaskLoads[int]
    right: sd.TaskLoads[int]

    def run(self) -> None:
        self.output().save(self.left.output().load() + self.right.output().load())


class WhereRan(sd.AutoTask[int]):
    """Records the process id that ran it."""

    tag: str

    def run(self) -> None:
        self.output().save(os.getpid())


class Spin(sd.AutoTask[int]):
    """CPU-bound pure-Python work."""

    seed: int
    rounds: int = 200_000

    def run(self) -> None:
        total = self.seed
        for i in range(self.rounds):
            total = (total * 31 + i) % 1_000_003
        self.output().save(total)


class Nap(sd.AutoTask[float]):
    """I/O-bound: sleeps."""

    key: int
    seconds: float = 0.1

    def run(self) -> None:
        time.sleep(self.seconds)
        self.output().save(self.seconds)


class SumOfChain(sd.AutoTask[int]):
    """Dynamic dependencies: yields tasks that have requirements of their own."""

    n: int

    def run(self) -> Generator[list[Add], None, None]:
        sums = [Add(left=Number(value=i), right=Number(value=i + 1)) for i in range(self.n)]
        yield sums
        self.output().save(sum(s.output().load() for s in sums))


class Chatty(sd.AutoTask[int]):
    """Logs and prints while it runs, and publishes two assets."""

    n: int
    detail: bool = False

    def run(self) -> None:
        if self.detail:
            logging.getLogger("tests.chatty").info("in detail")
        logging.getLogger("tests.chatty").warning("working on %d", self.n)
        print(f"half of {self.n}", end="")
        print(f" is {self.n / 2}")
        print("to stderr", file=sys.stderr)
        self.output().save(self.n * 2)

    def registry_assets(self) -> list[sd.RegistryAsset]:
        doubled = self.output().load()
        return [
            sd.MarkdownRegistryAsset("report", f"# {self.n} doubled is {doubled}"),
            sd.JSONRegistryAsset("metrics", {"doubled": doubled}),
        ]


class Mute(sd.AutoTask[int]):
    """Writes nothing to any stream; needs two chatty tasks."""

    left: sd.TaskLoads[int]
    right: sd.TaskLoads[int]

    def run(self) -> None:
        self.output().save(self.left.output().load() + self.right.output().load())


class Grumpy(sd.AutoTask[int]):
    """Logs and prints, then fails."""

    def run(self) -> None:
        logging.getLogger("tests.grumpy").error("about to fail")
        print("sigh")
        raise RuntimeError("out of coffee")


def layered(width: int, depth: int) -> list[Add]:
    """A layered DAG: each task adds two tasks of the layer below."""
    layer: list[sd.AutoTask[int]] = [Number(value=i) for i in range(width)]
    for _ in range(depth):
        layer = [Add(left=layer[i], right=layer[(i + 1) % width]) for i in range(width)]
    return layer  # type: ignore[return-value]
