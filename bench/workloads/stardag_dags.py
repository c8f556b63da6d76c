"""The benchmark's stardag tasks, in an importable module: worker processes import them."""

import time

import stardag_core as sd

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
