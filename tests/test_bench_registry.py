"""The registry benchmarks still run (`--quick`): bench/registry.py and bench/auth.py measure
what they say they do.

No timing is asserted: the figures belong in bench/README.md, not in a test's verdict.
"""

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parent.parent / "bench" / "registry.py"


def test_quick_run_prints_a_results_table() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )

    assert result.returncode == 0, result.stderr[-5000:]
    header, rule, *rows = result.stdout.splitlines()
    assert header.startswith("| backend | benchmark | median |")
    assert rule.startswith("|---|")
    measured = {row.split(" | ")[1] for row in rows if row.startswith("| sqlite |")}
    assert "registerTasks, batches of 500 (2 deps each)" in measured
    assert any(name.startswith("upstream, maxDepth 5") for name in measured)
    assert any(name.startswith("first page of 20") for name in measured)


def test_the_credential_benchmark_prints_every_check_beside_its_floor() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT.with_name("auth.py")), "--quick"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )

    assert result.returncode == 0, result.stderr[-5000:]
    header, _rule, *rows = result.stdout.splitlines()
    assert header == "| check | µs per check | ratio to floor |"
    checks = [row.split(" | ")[0].strip("| ") for row in rows]
    assert checks[0].startswith("floor")
    assert {"API key, hash", "registry token"} <= set(checks)


def test_the_sdk_benchmark_prints_each_contender_beside_the_build_without_registry() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT.with_name("sdk.py")), "--quick"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )

    assert result.returncode == 0, result.stderr[-5000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    contenders = [row.split(" | ")[0].removeprefix("| ") for row in rows[1:]]
    assert contenders == [
        "plain-Python floor (whole process)",
        "no registry",
        "GraphQL registry",
        "registry + locks",
        "GraphQL registry, in the build's session",
        "registry + locks, in the build's session",
    ]


def test_the_sdk_benchmark_measures_a_change_against_a_revision() -> None:
    worktrees = ["git", "-C", str(SCRIPT.parent), "worktree", "list"]
    before = subprocess.run(worktrees, capture_output=True, text=True, check=True).stdout
    result = subprocess.run(
        [sys.executable, str(SCRIPT.with_name("sdk.py")), "--quick", "--against", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )

    assert result.returncode == 0, result.stderr[-5000:]
    table, comparison = result.stdout.split("This checkout against HEAD, paired")
    contenders = [
        line.split(" | ")[0].removeprefix("| ")
        for line in table.splitlines()
        if line.startswith("| ") and " | " in line
    ]
    assert contenders[-5:] == [
        "HEAD: no registry",
        "HEAD: GraphQL registry",
        "HEAD: registry + locks",
        "HEAD: GraphQL registry, in the build's session",
        "HEAD: registry + locks, in the build's session",
    ]
    rows = [line.split(" | ") for line in comparison.splitlines() if line.startswith("| ")]
    assert [row[0].removeprefix("| ") for row in rows[1:]] == [
        "no registry",
        "GraphQL registry",
        "registry + locks",
        "GraphQL registry, in the build's session",
        "registry + locks, in the build's session",
    ]
    assert all(float(row[1]) > 0 for row in rows[1:])
    after = subprocess.run(worktrees, capture_output=True, text=True, check=True).stdout
    assert after == before  # the revision's checkout is gone
