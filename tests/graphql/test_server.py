"""`stardag serve`: loopback only in local mode, a clear error when the database is behind,
and a heap the garbage collector no longer walks."""

import subprocess
import sys

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


# Run in a process of its own: freezing is for the rest of a process's life.
FROZEN = """
import gc, weakref
from stardag_graphql.server import freeze_heap

freeze_heap()
frozen = gc.get_freeze_count()

class Node: ...

node = Node()
node.cycle = node
after = weakref.ref(node)
del node
gc.collect()
print(frozen, gc.isenabled(), after() is None)
"""


def test_the_server_freezes_its_heap_and_still_collects_what_it_makes_later() -> None:
    done = subprocess.run(
        [sys.executable, "-c", FROZEN], check=True, capture_output=True, text=True
    )

    frozen, enabled, collected = done.stdout.split()
    assert int(frozen) > 10_000  # the modules, the schema and SQLAlchemy's mappers
    assert (enabled, collected) == ("True", "True")
