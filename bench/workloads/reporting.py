"""W1 (the layered DAG, class idiom) built while reporting to a registry, for bench/sdk.py.

python reporting.py ROOT N none|registry|locks URL WORKSPACE OUTBOX

Prints `<build seconds> <seconds until the registry had everything>`: the build alone, then
the build and the outbox's draining (the reports are sent in the background, so a build
need not wait for them; the second figure says how far behind they finish).
"""

import sys
import time
from pathlib import Path

from stardag_dags import LAYERS, class_idiom

import stardag_core as sd
from stardag_core.registry_client import GraphQLRegistry


def main(root: str, n: int, mode: str, url: str, workspace: str, outbox: str) -> None:
    registry = None if mode == "none" else GraphQLRegistry(url, workspace, outbox=Path(outbox))
    with sd.use_settings(sd.Settings(target_roots={"default": root})):
        started = time.perf_counter()
        summary = sd.build(
            *class_idiom(n // LAYERS),
            registry=registry or sd.NoOpRegistry(),
            locks=mode == "locks",
            progress=False,
        )
        built = time.perf_counter() - started
        summary.raise_on_failure()
        assert len(summary.built) == n, summary
        if registry is not None:
            assert registry.flush(300), "the registry did not take the reports in 300 s"
            registry.close()
        print(f"{built:.4f} {time.perf_counter() - started:.4f}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6])
