"""A worker process for the build-lock tests: builds a DAG with locks against a registry.

    python -m tests.graphql.lock_worker URL WORKSPACE OUTBOX TTL dag|wide|slow

Every run of a task appends a line to the file `$LOCK_EFFECTS` (its side effect, counted by
the tests) and writes `$WORKER_NAME` as its output; `$RUN_SECONDS` makes the `slow` task
sleep before it writes, `$STARTED` names a file touched when a run starts, and with
`$START_GATE` the worker builds only once that file exists. The worker prints its build
summary as JSON and exits 0 if the build succeeded.
"""

import json
import os
import sys
import time
from pathlib import Path

import stardag_core as sd
from stardag_core.registry_client import GraphQLRegistry

sd.namespace("tests.locks")

WIDTH = 20
DEPTH = 10
SLOW = {(5, index) for index in range(4)}
"""Tasks that run three times longer than the lease."""
STEP_SECONDS = 0.05
"""How long the other tasks run: long enough that one worker's two threads cannot keep up
with a layer, so that the workers share the DAG."""
THREADS = 2
WIDE = 40
WIDE_SECONDS = 0.1
"""A wide layer: more tasks of this length than one worker's threads run in a lease's
round trip, so workers started together should each get some."""


class Step(sd.AutoTask[str]):
    """One task of the locked DAG; it needs up to two tasks of the layer below."""

    layer: int
    index: int
    seconds: float = 0.0
    left: sd.TaskLoads[str] | None = None
    right: sd.TaskLoads[str] | None = None

    def run(self) -> None:
        Path(os.environ["STARTED"]).touch()
        with open(os.environ["LOCK_EFFECTS"], "a") as effects:
            effects.write(f"{self.id} {os.getpid()}\n")
        time.sleep(float(os.environ.get("RUN_SECONDS", self.seconds)))
        self.output().save(os.environ["WORKER_NAME"])


def dag(ttl: float) -> list[Step]:
    """200 tasks in 10 layers of 20, each needing two of the layer below."""
    layer = [Step(layer=0, index=index) for index in range(WIDTH)]
    for depth in range(1, DEPTH):
        layer = [
            Step(
                layer=depth,
                index=index,
                seconds=3 * ttl if (depth, index) in SLOW else STEP_SECONDS,
                left=layer[index],
                right=layer[(index + 1) % WIDTH],
            )
            for index in range(WIDTH)
        ]
    return layer


def wide() -> list[Step]:
    """One layer of `WIDE` tasks of `WIDE_SECONDS` each."""
    return [Step(layer=-1, index=index, seconds=WIDE_SECONDS) for index in range(WIDE)]


def slow() -> Step:
    """One task, slowed down by `$RUN_SECONDS` in the worker that should stall."""
    return Step(layer=0, index=-1)


def main(url: str, workspace: str, outbox: str, ttl: str, which: str) -> int:
    registry = GraphQLRegistry(url, workspace, outbox=Path(outbox))
    roots = dag(float(ttl)) if which == "dag" else wide() if which == "wide" else [slow()]
    if gate := os.environ.get("START_GATE"):
        wait_at(Path(gate))
    summary = sd.build(
        *roots,
        registry=registry,
        executor=sd.ThreadExecutor(THREADS),
        locks=True,
        lock_ttl=float(ttl),
        progress=False,
    )
    registry.close(timeout=30)
    failures = [type(failure.error).__name__ for failure in summary.failures]
    print(json.dumps({"counts": summary.counts, "failures": failures}))
    return 0 if summary.ok else 1


def wait_at(gate: Path) -> None:
    """Say this worker is ready (`<gate>.<name>`), then wait until `gate` exists: workers
    that start together share the work, where the first one up could build all of it
    before the others had imported stardag."""
    Path(f"{gate}.{os.environ['WORKER_NAME']}").touch()
    deadline = time.monotonic() + 120
    while not gate.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"{gate} never opened")
        time.sleep(0.01)


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
