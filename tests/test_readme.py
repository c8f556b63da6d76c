"""Every Python example in the README runs, each in a fresh target root."""

import re
import sys
import types
from pathlib import Path

import pytest

import stardag_core as sd

README = Path(__file__).parent.parent / "README.md"
EXAMPLES = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_readme_has_a_short_quick_example() -> None:
    quick = EXAMPLES[0]
    assert len(quick.strip().splitlines()) < 20
    assert "sd.build(total)" in quick


@pytest.mark.parametrize("index", range(len(EXAMPLES)))
def test_readme_example_runs(index: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType(f"readme_example_{index + 1}")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    with sd.use_settings(sd.Settings(target_roots={"default": str(tmp_path)})):
        code = compile(EXAMPLES[index], f"README.md example {index + 1}", "exec")
        exec(code, module.__dict__)


def test_ci_runs_the_readme_test_command() -> None:
    commands = re.findall(r"```sh\n(.*?)\n```", README.read_text(), flags=re.DOTALL)
    test_command = next(command for command in commands if "pytest" in command)
    ci_script = (README.parent / ".ci" / "run").read_text()
    assert test_command in ci_script.splitlines()
