"""Real databases for the registry tests: embedded SQLite files and a throwaway PostgreSQL."""

import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from graphql import GraphQLError
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from strawberry.types import ExecutionResult

from stardag_graphql.app import create_app
from stardag_graphql.context import Context
from stardag_graphql.database import create_engine, create_sessionmaker, create_write_gate
from stardag_graphql.migrations import ensure_schema, upgrade
from stardag_graphql.models import Organization, Workspace
from stardag_graphql.notify import Notifier
from stardag_graphql.schema import schema
from stardag_graphql.settings import Settings
from stardag_graphql.store.tenancy import Identity, ensure_local_identity
from stardag_graphql.tokens import TokenSigner
from tests.conftest import free_port, serving
from tests.graphql.tenants import ServerMode
from tests.identity_provider import IdentityProvider

CLIENT_ID = "stardag-cli"
AUDIENCE = "stardag"


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A PostgreSQL 15 cluster on loopback for the whole run (or `TEST_DATABASE_URL`)."""
    if url := os.environ.get("TEST_DATABASE_URL"):
        yield url
        return
    pgbin = Path(os.environ.get("PGBIN", "/usr/lib/postgresql/15/bin"))
    root = os.geteuid() == 0
    # PostgreSQL refuses to run as root.
    as_pg: list[str | Path] = ["runuser", "-u", "postgres", "--"] if root else []
    directory = Path(tempfile.mkdtemp(prefix="pgtest-"))
    if root:
        shutil.chown(directory, "postgres", "postgres")
    port = free_port()
    data = directory / "data"
    initdb: list[str | Path] = [
        pgbin / "initdb",
        "-D",
        data,
        "-U",
        "postgres",
        "-A",
        "trust",
        "-E",
        "UTF8",
    ]
    subprocess.run([*as_pg, *initdb, "--no-locale"], check=True, stdout=subprocess.DEVNULL)
    options = f"-h 127.0.0.1 -p {port} -k {directory} -c fsync=off -c synchronous_commit=off"
    start: list[str | Path] = [
        pgbin / "pg_ctl",
        "-D",
        data,
        "-l",
        directory / "server.log",
        "-w",
        "-o",
        options,
    ]
    subprocess.run([*as_pg, *start, "start"], check=True, stdout=subprocess.DEVNULL)
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*as_pg, pgbin / "pg_ctl", "-D", data, "-m", "fast", "stop"],
            stdout=subprocess.DEVNULL,
        )
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SQLite file at the latest schema, migrated once and copied for each test."""
    path = tmp_path_factory.mktemp("migrated") / "registry.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    # The last connection closed has checkpointed the write-ahead log into the file.
    assert not path.with_name(f"{path.name}-wal").exists()
    return path


@pytest.fixture(scope="session")
def migrated_postgresql(pg_url: str) -> Iterator[str]:
    """The name of a PostgreSQL database at the latest schema, migrated once: each test's
    database is a copy of it (`CREATE DATABASE ... TEMPLATE`)."""
    with postgresql_database(pg_url, "migrated") as url:
        upgrade(url)
        name = make_url(url).database
        assert name is not None
        yield name


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each kind, fresh for every test."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'registry.db'}"
        return
    with postgresql_database(request.getfixturevalue("pg_url")) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of each kind at the latest schema, fresh for every test."""
    with migrated_database(request, tmp_path) as url:
        yield url


@contextlib.contextmanager
def migrated_database(request: pytest.FixtureRequest, directory: Path) -> Iterator[str]:
    """A new database at the latest schema of the kind `request.param` names ("sqlite" or
    "postgresql"), an SQLite file in `directory`; yields its URL."""
    if request.param == "sqlite":
        path = directory / "registry.db"
        shutil.copyfile(request.getfixturevalue("migrated_sqlite"), path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    pg_url = request.getfixturevalue("pg_url")
    template = request.getfixturevalue("migrated_postgresql")
    with postgresql_database(pg_url, template=template) as url:
        yield url


@contextlib.contextmanager
def postgresql_database(
    pg_url: str, prefix: str = "test", template: str = "template1"
) -> Iterator[str]:
    """A new database on the server of `pg_url`, a copy of `template` (by default an empty
    one), dropped afterwards; yields its URL."""
    server = make_url(pg_url)
    name = f"{prefix}_{uuid.uuid4().hex}"
    admin = server.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on a fresh database at the latest schema."""
    engine = create_engine(Settings(database_url=database_url))
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
async def session(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """A session on the migrated database."""
    async with create_sessionmaker(engine)() as session:
        yield session


async def make_workspace(session: AsyncSession, slug: str = "main") -> uuid.UUID:
    """A new organization with one workspace; returns the workspace's id."""
    organization = Organization(slug=f"org-{uuid.uuid4().hex[:8]}", name="Acme")
    session.add(organization)
    await session.flush()
    workspace = Workspace(organization_id=organization.id, slug=slug, name=slug.title())
    session.add(workspace)
    await session.commit()
    return workspace.id


# The batch writes, as clients send them.
REGISTER = """
mutation Register($workspace: ID!, $tasks: [TaskInput!]!, $build: ID, $roots: [String!]) {
  registerTasks(workspaceId: $workspace, tasks: $tasks, buildId: $build, rootTaskIds: $roots) {
    registered
  }
}
"""
RECORD = """
mutation Record($workspace: ID!, $events: [EventInput!]!) {
  recordEvents(workspaceId: $workspace, events: $events) { recorded duplicates }
}
"""


class Api:
    """Runs operations through `schema.execute` as one caller, like a request would."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        identity: Identity,
        notifier: Notifier,
        write_gate: contextlib.AbstractAsyncContextManager[Any],
    ) -> None:
        self.sessions = sessions
        self.identity = identity
        self.notifier = notifier
        self.write_gate = write_gate

    def context(self) -> Context:
        """A fresh request context."""
        return Context(
            self.sessions,
            self.identity,
            self.notifier,
            request_id=uuid.uuid4().hex,
            write_gate=self.write_gate,
        )

    async def run(self, query: str, **variables: Any) -> ExecutionResult:
        """The result of `query`, errors included."""
        return await schema.execute(query, variable_values=variables, context_value=self.context())

    async def __call__(self, query: str, **variables: Any) -> dict[str, Any]:
        """The data of `query`; fails the test on any error."""
        result = await self.run(query, **variables)
        assert not result.errors, result.errors
        assert result.data is not None
        return result.data

    async def error(self, query: str, **variables: Any) -> GraphQLError:
        """The one error `query` gives."""
        result = await self.run(query, **variables)
        assert result.errors, result.data
        assert len(result.errors) == 1, result.errors
        return result.errors[0]

    async def workspace_id(self) -> str:
        """The global id of the caller's first workspace."""
        data = await self("{ organizations { workspaces { id } } }")
        return str(data["organizations"][0]["workspaces"][0]["id"])


@pytest.fixture
async def api(engine: AsyncEngine) -> Api:
    """The API on a fresh database, as the local user."""
    sessions = create_sessionmaker(engine)
    async with sessions() as session:
        identity = await ensure_local_identity(session)
    return Api(sessions, identity, Notifier(), create_write_gate(engine))


@pytest.fixture
async def registry(database_url: str) -> AsyncIterator[Starlette]:
    """The registry app on a fresh database at the latest schema, started (lifespan run)."""
    app = create_app(Settings(database_url=database_url))
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture(scope="session")
def identity_provider() -> Iterator[IdentityProvider]:
    """A real OpenID Connect provider on loopback, with the CLI registered as a client."""
    with IdentityProvider(audience=AUDIENCE) as provider:
        provider.add_client(CLIENT_ID, ["http://127.0.0.1/callback"])
        yield provider


def server_settings(
    database_url: str, provider: IdentityProvider, key_file: Path, **overrides: Any
) -> Settings:
    """Settings of a registry in server mode, signing in through `provider`."""
    values: dict[str, Any] = {"rate_limit_per_minute": 100_000, **overrides}
    return Settings(
        database_url=database_url,
        oidc_issuer=provider.issuer,
        oidc_client_id=CLIENT_ID,
        oidc_audience=AUDIENCE,
        signing_key_file=key_file,
        **values,
    )


@contextlib.contextmanager
def fresh_database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A database at the latest schema of the kind `request.param` names, as the
    `database_url` fixture makes, but for a module-scoped fixture."""
    with migrated_database(request, tmp_path_factory.mktemp("module")) as url:
        yield url


@contextlib.contextmanager
def serving_settings(settings: Settings) -> Iterator[str]:
    """The registry for `settings` under uvicorn, on its migrated database; yields its URL."""
    asyncio.run(ensure_schema(settings))
    with serving(create_app(settings)) as url:
        yield url


@contextlib.asynccontextmanager
async def server_mode_at(url: str, settings: Settings) -> AsyncIterator[ServerMode]:
    """A `ServerMode` for the registry at `url`, with sessions in the running event loop."""
    engine = create_engine(settings)
    try:
        signer = TokenSigner.load_or_create(settings.signing_key_file, settings.public_url)
        yield ServerMode(url, signer, create_sessionmaker(engine))
    finally:
        await engine.dispose()


@pytest.fixture
async def server_mode(
    database_url: str, identity_provider: IdentityProvider, tmp_path: Path
) -> AsyncIterator[ServerMode]:
    """A registry in server mode under uvicorn, on a fresh database."""
    settings = server_settings(database_url, identity_provider, tmp_path / "key.pem")
    with serving(create_app(settings)) as url:
        async with server_mode_at(url, settings) as server:
            yield server
