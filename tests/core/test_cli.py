"""The stardag command line."""

from pathlib import Path

from typer.testing import CliRunner

from stardag_core.cli import app


def test_demo_builds_then_finds_everything_complete(tmp_path: Path) -> None:
    runner = CliRunner()
    first = runner.invoke(app, ["demo", "--root", str(tmp_path)])
    assert first.exit_code == 0, first.output
    assert "7 built" in first.output
    assert "| north |" in first.output
    reports = list(tmp_path.glob("stardag/demo/report/*/*/*.txt"))
    assert len(reports) == 1
    second = runner.invoke(app, ["demo", "--root", str(tmp_path)])
    assert second.exit_code == 0, second.output
    assert "0 built" in second.output
    assert "already complete" in second.output
