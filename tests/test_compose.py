"""docker-compose.yml is valid for the Compose client, and deploys what the README promises."""

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).parents[1]


SERVER_MODE = {
    "STARDAG_OIDC_ISSUER": "https://login.example.com",
    "STARDAG_OIDC_CLIENT_ID": "stardag",
}


def compose(
    *args: str, password: str | None, **environment: str
) -> subprocess.CompletedProcess[str]:
    """Run the Compose client (the `docker compose` plugin, else `docker-compose`) here."""
    if shutil.which("docker") and _has_plugin():
        command = ["docker", "compose", *args]
    elif shutil.which("docker-compose"):
        command = ["docker-compose", *args]
    else:
        pytest.fail("no Compose client: apt-get install docker-compose (CI installs it)")
    environment |= {"PATH": "/usr/bin:/bin:/usr/local/bin"}
    if password is not None:
        environment["STARDAG_DB_PASSWORD"] = password
    return subprocess.run(
        command, cwd=ROOT, env=environment, capture_output=True, text=True, check=False
    )


def _has_plugin() -> bool:
    found = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    return found.returncode == 0


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    """The resolved Compose configuration."""
    resolved = compose("config", password="s3cret", **SERVER_MODE)
    assert resolved.returncode == 0, resolved.stderr
    loaded: dict[str, Any] = yaml.safe_load(resolved.stdout)
    return loaded


def test_postgresql_keeps_its_data_in_a_volume_and_reports_health(config: dict[str, Any]) -> None:
    postgres = config["services"]["postgres"]

    assert postgres["image"].startswith("postgres:15")
    assert "pgdata:/var/lib/postgresql/data" in postgres["volumes"][0]
    assert "pgdata" in config["volumes"]
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])


def test_the_registry_migrates_then_serves_in_server_mode_once_postgresql_is_healthy(
    config: dict[str, Any],
) -> None:
    registry = config["services"]["registry"]
    command = " ".join(registry["command"])
    environment = registry["environment"]

    assert registry["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert command.index("stardag db upgrade") < command.index("stardag serve")
    assert "--host 0.0.0.0" in command
    assert environment["STARDAG_DATABASE_URL"] == (
        "postgresql+psycopg://stardag:s3cret@postgres:5432/stardag"
    )
    assert environment["STARDAG_OIDC_ISSUER"] == "https://login.example.com"
    assert environment["STARDAG_SIGNING_KEY_FILE"].startswith("/var/lib/stardag/")
    assert "registry-keys" in config["volumes"]
    assert "/healthz" in " ".join(registry["healthcheck"]["test"])
    assert (ROOT / "Dockerfile").is_file()


def test_the_gui_serves_the_team_with_sign_in_once_the_registry_is_healthy(
    config: dict[str, Any],
) -> None:
    gui = config["services"]["gui"]
    command = " ".join(gui["command"])
    environment = gui["environment"]
    (volume,) = gui["volumes"]

    assert gui["depends_on"]["registry"]["condition"] == "service_healthy"
    assert command.startswith("stardag gui")
    assert "--host 0.0.0.0" in command
    assert environment["STARDAG_GUI_SIGN_IN"] == "true"
    assert environment["STARDAG_GUI_REGISTRY_URL"] == "http://registry:8000"
    assert environment["STARDAG_GUI_PUBLIC_URL"] == "http://127.0.0.1:8080"
    assert volume.startswith(f"gui-sessions:{environment['STARDAG_HOME']}")
    assert "gui-sessions" in config["volumes"]
    assert "127.0.0.1:8080/" in " ".join(gui["healthcheck"]["test"])


def test_the_gui_is_told_where_browsers_reach_it() -> None:
    resolved = compose(
        "config",
        password="s3cret",
        STARDAG_GUI_PUBLIC_URL="https://gui.example.com",
        STARDAG_GUI_PORT="9090",
        **SERVER_MODE,
    )
    gui = yaml.safe_load(resolved.stdout)["services"]["gui"]
    (port,) = gui["ports"]

    assert gui["environment"]["STARDAG_GUI_PUBLIC_URL"] == "https://gui.example.com"
    assert (int(port["published"]), int(port["target"])) == (9090, 8080)


def test_the_registry_and_the_gui_are_published_and_postgresql_stays_internal(
    config: dict[str, Any],
) -> None:
    (port,) = config["services"]["registry"]["ports"]
    (gui_port,) = config["services"]["gui"]["ports"]

    assert int(port["target"]) == 8000
    assert int(gui_port["target"]) == 8080
    assert "ports" not in config["services"]["postgres"]
    assert all("network_mode" not in service for service in config["services"].values())


def test_the_database_password_has_no_default() -> None:
    refused = compose("config", password=None, **SERVER_MODE)

    assert refused.returncode != 0
    assert "set STARDAG_DB_PASSWORD" in refused.stderr


def test_server_mode_needs_an_identity_provider() -> None:
    refused = compose("config", password="s3cret")

    assert refused.returncode != 0
    assert "STARDAG_OIDC_" in refused.stderr
