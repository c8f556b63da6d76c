"""`stardag serve`: loopback only in local mode, and a clear error when the database is behind."""

import pytest
from typer.testing import CliRunner

from stardag_core.cli import app
from stardag_graphql.errors import ServerConfigError
from stardag_graphql.server import check_host, is_loopback, serve
from stardag_graphql.settings import Settings
from tests.graphql.conftest import postgresql_database


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.53", "::1", "[::1]", "localhost"])
def test_loopback_addresses_are_allowed(host: str) -> None:
    assert is_loopback(host)
    check_host(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "example.com", ""])
def test_a_wider_address_is_refused_in_local_mode(host: str) -> None:
    assert not is_loopback(host)
    with pytest.raises(ServerConfigError, match="listens on loopback only"):
        check_host(host)


def test_the_cli_refuses_a_wider_address_before_opening_anything() -> None:
    result = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0"])

    assert result.exit_code == 2
    assert "refusing to listen on '0.0.0.0'" in " ".join(result.output.split())


def test_an_unmigrated_postgresql_database_is_one_clear_error(pg_url: str) -> None:
    with (
        postgresql_database(pg_url, "empty") as url,
        pytest.raises(ServerConfigError, match=r"run `stardag db upgrade`"),
    ):
        serve(Settings(database_url=url), "127.0.0.1", 1)
