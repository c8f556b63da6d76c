"""The workloads in the original stardag (run in the peers' environment).

python original.py w1 ROOT N class|readme
python original.py w2 ROOT N class
python original.py w3 N
"""

import os
import sys

LAYERS = 20


def main() -> None:
    command = sys.argv[1]
    if command in ("w1", "w2"):
        os.environ["STARDAG_TARGET_ROOTS__DEFAULT"] = sys.argv[2]
    import stardag as sd

    class Node(sd.Task[int]):
        layer: int
        index: int
        width: int

        def requires(self):  # type: ignore[no-untyped-def]
            if self.layer == 0:
                return []
            below = self.layer - 1
            return [
                Node(layer=below, index=self.index, width=self.width),
                Node(layer=below, index=(self.index + 1) % self.width, width=self.width),
            ]

        def run(self) -> None:
            if self.layer == 0:
                self.target().save(self.index)
                return
            left, right = self.requires()
            self.target().save((left.target().load() + right.target().load()) % 1000)

    @sd.task
    def source(index: int) -> int:
        return index

    @sd.task
    def combine(left: sd.Depends[int], right: sd.Depends[int]) -> int:
        return (left + right) % 1000

    class Leaf(sd.Task[int]):
        index: int

        def run(self) -> None:
            self.target().save(self.index)

    class Parametrized(sd.Task[int]):
        index: int
        label: str
        scale: float
        dep: sd.TaskLoads[int]

        def run(self) -> None:
            self.target().save(self.index)

    if command in ("w1", "w2"):
        n, idiom = int(sys.argv[3]), sys.argv[4]
        width = n // LAYERS
        if idiom == "class":
            roots = [Node(layer=LAYERS - 1, index=i, width=width) for i in range(width)]
        else:
            layer = [source(index=i) for i in range(width)]
            for _ in range(1, LAYERS):
                layer = [combine(left=layer[i], right=layer[(i + 1) % width]) for i in range(width)]
            roots = layer
        sd.build(roots)
        assert all(root.complete() for root in roots)
    else:
        n = int(sys.argv[2])
        tasks = [
            Parametrized(index=i, label=f"node-{i}", scale=0.5, dep=Leaf(index=i)) for i in range(n)
        ]
        assert len({task.id for task in tasks}) == n


if __name__ == "__main__":
    main()
