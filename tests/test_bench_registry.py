"""The registry benchmark still runs (`--quick`): bench/registry.py measures what it says it does.

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
