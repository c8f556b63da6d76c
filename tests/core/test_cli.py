"""The stardag command line."""

import contextlib
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner, Result

from stardag_core.cli import app
from stardag_core.cli_config import credential_store
from stardag_core.credentials import LoginRecord


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


def stardag(*args: str, root: Path) -> subprocess.CompletedProcess[str]:
    """Run the stardag command line in a fresh process, the way a user does."""
    env = {**os.environ, "STARDAG_TARGET_ROOTS__DEFAULT": str(root)}
    return subprocess.run(
        [sys.executable, "-m", "stardag_core", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_output_into_a_pipe_keeps_each_line_whole(tmp_path: Path) -> None:
    # Deep enough that the report's path and the table's rows are longer than 80 columns,
    # where rich folds output that does not go to a terminal.
    root = tmp_path / "a-target-root-deep-enough-that-every-output-path-is-longer-than-a-line"
    result = stardag("demo", "--root", str(root), root=root)
    assert result.returncode == 0, result.stderr
    (report,) = root.glob("stardag/demo/report/*/*/*.txt")
    lines = result.stdout.splitlines()
    assert f"Report ({report}):" in lines
    (row,) = [line for line in lines if line.startswith("│ report ")]
    assert str(report) in row, result.stdout


def test_build_a_task_from_the_command_line(tmp_path: Path) -> None:
    expression = "tests.core.examples.pipeline:layered(width=3, depth=2)"
    first = stardag("build", expression, "--executor", "inline", root=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "9 built, 0 skipped, 0 failed" in first.stdout
    assert list(tmp_path.glob("examples/pipeline/Add/*/*/*.json"))
    again = stardag("build", expression, "--workers", "2", root=tmp_path)
    assert "0 built, 3 skipped" in again.stdout


def test_build_reports_failures_with_exit_code(tmp_path: Path) -> None:
    result = stardag("build", "tests.core.test_build:Broken()", "-k", root=tmp_path)
    assert result.returncode == 1
    assert "disk on fire" in result.stdout


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("no_colon", "is not module:expression"),
        ("no_such_module_xyz:task()", "cannot import 'no_such_module_xyz'"),
        ("tests.core.examples.pipeline:Number(value='x')", "evaluating"),
        ("tests.core.examples.pipeline:42", "gave 42, not a task"),
    ],
)
def test_build_explains_a_bad_target(target: str, message: str) -> None:
    result = CliRunner().invoke(app, ["build", target])
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())


def test_db_upgrade_creates_the_registry_schema(tmp_path: Path) -> None:
    database = tmp_path / "registry" / "registry.db"
    result = stardag(
        "db", "upgrade", "--database-url", f"sqlite+aiosqlite:///{database}", root=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "is at schema revision head" in result.stdout
    with sqlite3.connect(database) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    assert {"tasks", "workspaces", "alembic_version"} <= tables


# Registries and profiles (no registry needs to run for these).


def run(*args: str, **env: str) -> Result:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200", **env})
    assert "Traceback" not in result.output, result.output
    return result


def ok(*args: str, **env: str) -> str:
    result = run(*args, **env)
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def failed(*args: str, **env: str) -> str:
    result = run(*args, **env)
    assert result.exit_code == 1, result.output
    return " ".join(result.output.split())


def test_profiles_are_added_listed_and_used_from_the_command_line(tmp_path: Path) -> None:
    ok("registry", "add", "central", "--url", "https://stardag.example.com/")
    ok("registry", "add", "local", "--url", "http://127.0.0.1:8000")
    first = ok("profile", "add", "prod", "-r", "central", "-o", "acme", "-w", "production")
    assert "'prod' is the default profile" in first
    ok("profile", "add", "dev", "--registry", "local", "--workspace", "default")
    assert "Active: 'prod', because it is the default of the user configuration" in ok(
        "profile", "list"
    )
    assert "'dev' is the default profile" in ok("profile", "use", "dev")
    assert "* dev local default" in ok("profile", "list")

    chosen = ok("profile", "list", STARDAG_PROFILE="prod")
    assert "* prod central acme production" in chosen
    assert "Active: 'prod', because STARDAG_PROFILE=prod is set" in chosen
    shadowed = ok("profile", "use", "dev", STARDAG_PROFILE="prod")
    assert "'prod' stays active, because STARDAG_PROFILE=prod is set" in shadowed

    unknown = failed("profile", "list", STARDAG_PROFILE="staging")
    assert "unknown profile 'staging'" in unknown
    assert "known profiles: dev, prod" in unknown
    assert "unknown registry 'nowhere'" in failed("profile", "add", "x", "-r", "nowhere")
    bad = run("registry", "add", "x", "--url", "ftp://host")
    assert bad.exit_code == 2
    assert "is not a registry URL" in bad.output

    project = tmp_path / "project"
    project.mkdir()
    with contextlib.chdir(project):
        ok("profile", "use", "prod", "--project")
        listed = ok("profile", "list")
        assert "Active: 'prod', because it is the default of the project configuration" in listed
    assert (project / ".stardag" / "config.toml").read_text() == '[default]\nprofile = "prod"\n'


def test_a_broken_config_file_is_reported_without_a_traceback(hermetic_home: Path) -> None:
    config = hermetic_home / ".stardag" / "config.toml"
    config.parent.mkdir()
    config.write_text("[profile.prod\n")
    assert f"error: {config} is not valid TOML" in failed("profile", "list")
    assert f"error: {config} is not valid TOML" in failed("auth", "status")


COMMENTED = """\
# Our team's registries: ask #data-platform before adding one.
[registry.central]
url = "https://stardag.example.com"  # behind the VPN

# Production: nightly jobs only.
[profile.prod]
registry = "central"
organization = "acme"
workspace = "production"
"""


def test_editing_the_configuration_keeps_its_comments(hermetic_home: Path) -> None:
    config = hermetic_home / ".stardag" / "config.toml"
    config.parent.mkdir()
    config.write_text(COMMENTED)

    ok("registry", "add", "local", "--url", "http://127.0.0.1:8000")
    ok("profile", "add", "dev", "--registry", "local", "--workspace", "default")
    ok("profile", "use", "prod")

    text = config.read_text()
    assert text.startswith(COMMENTED)  # untouched, comments and all
    assert '[registry.local]\nurl = "http://127.0.0.1:8000"' in text
    assert "[profile.dev]" in text
    assert '[default]\nprofile = "prod"' in text
    assert "[registry]\n" not in text
    assert "[profile]\n" not in text


def test_logout_forgets_the_sign_in_even_when_its_provider_is_unreachable(
    hermetic_home: Path,
) -> None:
    ok("registry", "add", "team", "--url", "http://127.0.0.1:9")
    store = credential_store()
    store.save_login(
        LoginRecord(
            registry_url="http://127.0.0.1:9",
            issuer="http://127.0.0.1:9/idp",
            client_id="stardag-cli",
            token_endpoint="http://127.0.0.1:9/idp/token",
            scopes="openid",
            refresh_token=SecretStr("not-a-real-token"),
            signed_in_at=datetime.now(UTC),
        )
    )

    said = ok("auth", "logout", "--registry", "team")

    assert "Signed out of http://127.0.0.1:9" in said
    assert "Not revoked: cannot reach the identity provider http://127.0.0.1:9/idp" in said
    assert "the sign-in lapses when its refresh token expires" in said
    assert "not-a-real-token" not in said
    assert store.login("http://127.0.0.1:9") is None
