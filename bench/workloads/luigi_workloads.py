"""The workloads in Luigi (run in the peers' environment), with its local scheduler.

    python luigi_workloads.py prepare ROOT N   write every W1 output directly (for W2)
python luigi_workloads.py w1 ROOT N
python luigi_workloads.py w2 ROOT N
python luigi_workloads.py w3 N
"""

import json
import logging
import sys

import luigi

LAYERS = 20
ROOT = ""


class Node(luigi.Task):
    layer = luigi.IntParameter()
    index = luigi.IntParameter()
    width = luigi.IntParameter()

    def requires(self):  # type: ignore[no-untyped-def]
        if self.layer == 0:
            return []
        below = self.layer - 1
        return [
            Node(layer=below, index=self.index, width=self.width),
            Node(layer=below, index=(self.index + 1) % self.width, width=self.width),
        ]

    def output(self) -> luigi.LocalTarget:
        return luigi.LocalTarget(f"{ROOT}/Node/{self.task_id}.json")

    def run(self) -> None:
        if self.layer == 0:
            value = self.index
        else:
            left, right = self.input()
            with left.open() as a, right.open() as b:
                value = (json.load(a) + json.load(b)) % 1000
        with self.output().open("w") as out:
            json.dump(value, out)


class Leaf(luigi.Task):
    index = luigi.IntParameter()


class Parametrized(luigi.Task):
    index = luigi.IntParameter()
    label = luigi.Parameter()
    scale = luigi.FloatParameter()
    dep = luigi.TaskParameter()
    dep_index = luigi.IntParameter()

    def requires(self):  # type: ignore[no-untyped-def]
        return Leaf(index=self.dep_index)


def main() -> None:
    global ROOT
    logging.getLogger("luigi-interface").setLevel(logging.WARNING)
    command = sys.argv[1]
    if command == "prepare":
        # A cold Luigi build of 10,000 tasks takes over ten minutes here: W2 only needs the
        # outputs to exist, so write them where Luigi looks.
        ROOT, n = sys.argv[2], int(sys.argv[3])
        width = n // LAYERS
        for layer in range(LAYERS):
            for index in range(width):
                with Node(layer=layer, index=index, width=width).output().open("w") as out:
                    json.dump(0, out)
    elif command in ("w1", "w2"):
        ROOT, n = sys.argv[2], int(sys.argv[3])
        width = n // LAYERS
        roots = [Node(layer=LAYERS - 1, index=i, width=width) for i in range(width)]
        assert luigi.build(roots, local_scheduler=True, log_level="WARNING")
    else:
        n = int(sys.argv[2])
        tasks = [
            Parametrized(index=i, label=f"node-{i}", scale=0.5, dep=Leaf, dep_index=i)
            for i in range(n)
        ]
        ids = {task.task_id for task in tasks} | {task.requires().task_id for task in tasks}
        assert len(ids) == 2 * n


if __name__ == "__main__":
    main()
