"""The benchmark workloads still run (tiny sizes): bench/ measures what it says it does."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

WORKLOADS = Path(__file__).parent.parent / "bench" / "workloads"


def workload(script: str, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(WORKLOADS)}
    result = subprocess.run(
        [sys.executable, str(WORKLOADS / script), *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("idiom", ["readme", "class"])
def test_cold_then_warm_layered_dag(tmp_path: Path, idiom: str) -> None:
    workload("ours.py", "w1", str(tmp_path), "100", idiom, "threads")
    workload("ours.py", "w2", str(tmp_path), "100", idiom)


def test_floor_and_ids(tmp_path: Path) -> None:
    workload("floor.py", "w1", str(tmp_path), "100", "--durable")
    workload("floor.py", "w2", str(tmp_path), "100")
    workload("floor.py", "w3", "500")
    workload("ours.py", "w3", "500")
