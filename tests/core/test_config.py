"""Settings: target roots from the environment, in code, and clear errors."""

from pathlib import Path

import pytest

import stardag_core as sd


class Report(sd.AutoTask[str], target_root="archive"):
    def run(self) -> None:
        self.output().save("archived")


def test_target_roots_from_environment_variables() -> None:
    environ = {
        "STARDAG_TARGET_ROOTS__DEFAULT": "s3://bucket/stardag/",
        "STARDAG_TARGET_ROOTS__ARCHIVE": "memory://archive",
        "STARDAG_REGISTRY_URL": "http://127.0.0.1:8000",
    }
    settings = sd.Settings.from_environment(environ)
    assert settings.target_roots == {
        "default": "s3://bucket/stardag",
        "archive": "memory://archive",
    }


def test_without_configuration_the_default_root_is_under_home() -> None:
    default = str(Path.home() / ".stardag" / "target-roots" / "default")
    assert sd.Settings().target_roots == {"default": default}
    assert sd.Settings.from_environment({}).target_roots == {"default": default}


def test_invalid_environment_variable_is_a_config_error() -> None:
    with pytest.raises(sd.ConfigError, match="STARDAG_TARGET_ROOTS__"):
        sd.Settings.from_environment({"STARDAG_TARGET_ROOTS__DEFAULT": "  "})


def test_default_root_is_always_there_and_local_paths_are_absolute(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = sd.Settings(target_roots={"Scratch": "relative/dir"})
    assert settings.target_root("scratch") == str(tmp_path / "relative" / "dir")
    assert settings.target_root("default") == str(
        Path.home() / ".stardag" / "target-roots" / "default"
    )


def test_unknown_root_names_the_fix() -> None:
    with sd.use_settings(sd.Settings()), pytest.raises(sd.ConfigError) as caught:
        Report().output()
    assert "unknown target root 'archive'" in str(caught.value)
    assert "STARDAG_TARGET_ROOTS__ARCHIVE=<url>" in str(caught.value)


def test_task_writes_under_its_named_root(tmp_path: Path) -> None:
    roots = {"default": str(tmp_path / "main"), "archive": str(tmp_path / "archive")}
    with sd.use_settings(sd.Settings(target_roots=roots)):
        task = Report()
        assert task.output().uri.startswith(f"{tmp_path}/archive/Report/")
        sd.build(task).raise_on_failure()
        assert task.load() == "archived"


def test_use_settings_is_scoped(tmp_path: Path) -> None:
    outer = sd.get_settings()
    with sd.use_settings(sd.Settings(target_roots={"default": str(tmp_path)})) as inner:
        assert sd.get_settings() is inner
    assert sd.get_settings() is outer


def test_empty_root_url_is_rejected() -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        sd.Settings(target_roots={"default": " "})
