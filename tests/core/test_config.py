"""Settings: target roots from the environment, in code, and clear errors."""

from pathlib import Path

import pytest

import stardag_core as sd
from stardag_core.cli_config import write_config
from stardag_core.config import reload_settings
from stardag_core.profiles import (
    ConfigFile,
    Configuration,
    DefaultSection,
    Profile,
    RegistryEntry,
    resolve_registry,
)
from stardag_core.workspace_cache import RootChanges, default_cache


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


# Profiles: environment variables > project .stardag/config.toml > user ~/.stardag/config.toml.

USER_CONFIG = """
[registry.central]
url = "https://stardag.example.com/"

[registry.local]
url = "http://127.0.0.1:8000"

[profile.prod]
registry = "central"
organization = "acme"
workspace = "production"

[profile.dev]
registry = "local"
workspace = "default"

[default]
profile = "prod"
"""


@pytest.fixture
def user_config(hermetic_home: Path) -> Path:
    path = hermetic_home / ".stardag" / "config.toml"
    path.parent.mkdir()
    path.write_text(USER_CONFIG)
    return path


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project directory with a subdirectory to work in."""
    (tmp_path / "repo" / "src" / "deep").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "repo" / "src" / "deep")
    return tmp_path / "repo"


def write_project_config(project: Path, text: str) -> Path:
    path = project / ".stardag" / "config.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


def test_the_user_default_profile_is_active(user_config: Path) -> None:
    config = resolve_registry({})
    assert config is not None
    assert (config.url, config.registry) == ("https://stardag.example.com", "central")
    assert (config.organization, config.workspace, config.profile) == ("acme", "production", "prod")
    assert config.reason == f"it is the default of the user configuration {user_config}"


def test_the_nearest_project_file_wins_over_the_user_file(user_config: Path, project: Path) -> None:
    write_project_config(project.parent, '[default]\nprofile = "prod"\n')
    nearest = write_project_config(project, '[default]\nprofile = "dev"\n')
    config = resolve_registry({})
    assert config is not None
    assert (config.profile, config.url) == ("dev", "http://127.0.0.1:8000")
    assert config.reason == f"it is the default of the project configuration {nearest}"


def test_a_project_profile_hides_the_user_profile_of_the_same_name(
    user_config: Path, project: Path
) -> None:
    write_project_config(project, '[profile.prod]\nregistry = "local"\nworkspace = "staging"\n')
    config = resolve_registry({})
    assert config is not None
    assert (config.profile, config.registry, config.workspace) == ("prod", "local", "staging")
    assert config.organization is None


def test_environment_variables_win_over_every_file(user_config: Path, project: Path) -> None:
    write_project_config(project, '[default]\nprofile = "prod"\n')
    config = resolve_registry({"STARDAG_PROFILE": "dev", "STARDAG_WORKSPACE": "scratch"})
    assert config is not None
    assert (config.profile, config.workspace) == ("dev", "scratch")
    assert config.reason == "STARDAG_PROFILE=dev is set"
    config = resolve_registry({"STARDAG_REGISTRY_URL": "http://127.0.0.1:8000/"})
    assert config is not None
    assert (config.url, config.registry, config.profile) == (
        "http://127.0.0.1:8000",
        "local",
        "prod",
    )


def test_three_variables_fully_specify_a_worker() -> None:
    secret = "sd_0123456789abcdefSECRET"
    environ = {
        "STARDAG_REGISTRY_URL": "https://stardag.example.com",
        "STARDAG_API_KEY": secret,
        "STARDAG_WORKSPACE": "production",
    }
    config = resolve_registry(environ)
    assert config is not None
    assert (config.url, config.workspace, config.profile) == (
        "https://stardag.example.com",
        "production",
        None,
    )
    assert config.api_key is not None
    assert config.api_key.get_secret_value() == secret
    assert config.reason == "STARDAG_REGISTRY_URL is set"
    assert secret not in repr(config)
    assert secret not in str(config)
    assert secret not in config.describe()


def test_without_configuration_there_is_no_registry() -> None:
    assert resolve_registry({}) is None


def test_an_unknown_profile_is_an_error_that_lists_the_known_ones(user_config: Path) -> None:
    with pytest.raises(sd.ConfigError) as caught:
        resolve_registry({"STARDAG_PROFILE": "staging"})
    message = str(caught.value)
    assert "unknown profile 'staging'" in message
    assert "known profiles: dev, prod" in message
    assert "stardag profile add staging" in message


def test_a_default_naming_a_missing_profile_names_the_file(user_config: Path) -> None:
    user_config.write_text(USER_CONFIG.replace('profile = "prod"', 'profile = "gone"'))
    with pytest.raises(sd.ConfigError, match="unknown profile 'gone'") as caught:
        resolve_registry({})
    assert str(user_config) in str(caught.value)


def test_a_profile_on_an_unknown_registry_says_how_to_add_it(user_config: Path) -> None:
    user_config.write_text(USER_CONFIG.replace('registry = "local"', 'registry = "nowhere"'))
    with pytest.raises(sd.ConfigError) as caught:
        resolve_registry({"STARDAG_PROFILE": "dev"})
    assert "unknown registry 'nowhere' (used by profile 'dev'" in str(caught.value)
    assert "stardag registry add nowhere --url URL" in str(caught.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[profile.prod\nregistry = 1", "is not valid TOML"),
        ('[profile.prod]\nregistry = "x"\nuser = "me"\n', "profile.prod.user: Extra inputs"),
        ('[registry.x]\nurl = "ftp://host"\n', "is not a registry URL"),
    ],
)
def test_a_broken_config_file_is_an_error_naming_it(
    user_config: Path, text: str, message: str
) -> None:
    user_config.write_text(text)
    with pytest.raises(sd.ConfigError, match=message) as caught:
        resolve_registry({})
    assert str(user_config) in str(caught.value)


def test_a_worker_variable_without_a_registry_is_an_error() -> None:
    with pytest.raises(sd.ConfigError, match="STARDAG_API_KEY set, but no registry") as caught:
        resolve_registry({"STARDAG_API_KEY": "sd_secret_value"})
    assert "sd_secret_value" not in str(caught.value)


def test_stardag_home_moves_the_user_configuration(user_config: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    assert resolve_registry({"STARDAG_HOME": str(elsewhere)}) is None
    elsewhere.mkdir()
    (elsewhere / "config.toml").write_text(user_config.read_text())
    config = resolve_registry({"STARDAG_HOME": str(elsewhere)})
    assert config is not None
    assert config.profile == "prod"


def test_the_user_directory_is_not_taken_for_a_project(
    user_config: Path, hermetic_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(hermetic_home)
    configuration = Configuration.load({})
    assert configuration.project_path is None
    assert configuration.user_path == user_config


def test_config_files_round_trip_through_toml(tmp_path: Path) -> None:
    odd = 'a "quoted" \\ name\twith\ttabs'
    file = ConfigFile(
        registry={"my registry": RegistryEntry(url="http://127.0.0.1:9/")},
        profile={"p": Profile(registry="my registry", organization=odd)},
        default=DefaultSection(profile="p"),
    )
    write_config(tmp_path / "config.toml", file)
    assert ConfigFile.read(tmp_path / "config.toml") == file


def test_settings_use_the_workspace_roots_as_last_synced(
    user_config: Path, hermetic_home: Path
) -> None:
    config = resolve_registry({})
    assert config is not None
    cache = default_cache(hermetic_home / ".stardag")
    cache.synced(config, "V29ya3NwYWNlOjE=", {"default": "s3://acme/prod", "archive": "s3://old"})
    settings = sd.Settings.configured({})
    assert settings.target_roots == {"default": "s3://acme/prod", "archive": "s3://old"}
    overridden = sd.Settings.configured({"STARDAG_TARGET_ROOTS__ARCHIVE": "memory://a"})
    assert overridden.target_roots == {"default": "s3://acme/prod", "archive": "memory://a"}
    other = sd.Settings.configured({"STARDAG_PROFILE": "dev"})
    assert other.target_root("default").endswith(".stardag/target-roots/default")


def test_an_unknown_profile_stops_reading_settings_loudly(
    user_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STARDAG_PROFILE", "nope")
    reload_settings()
    with pytest.raises(sd.ConfigError, match="unknown profile 'nope'"):
        sd.get_settings()


def test_root_changes_added_are_fine_changed_or_removed_stop() -> None:
    cached = {"default": "s3://a", "archive": "s3://b"}
    assert not RootChanges.between(cached, dict(cached))
    added = RootChanges.between(cached, {**cached, "scratch": "s3://c"})
    assert added.added == {"scratch": "s3://c"}
    added.check("production")
    moved = RootChanges.between(cached, {"default": "s3://z"})
    with pytest.raises(sd.ConfigError) as caught:
        moved.check("production")
    message = str(caught.value)
    assert "'default' moved from s3://a to s3://z" in message
    assert "'archive' (s3://b) was removed" in message
    assert "stardag target-roots sync" in message
