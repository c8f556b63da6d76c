"""The registry as an ASGI app: GraphQL over HTTP and websockets, GraphiQL, and a health check.

```python
import uvicorn
from stardag_graphql.app import create_app
from stardag_graphql.settings import Settings

uvicorn.run(create_app(Settings()), host="127.0.0.1", port=8000)
```

At start the app connects to its database: the embedded SQLite upgrades itself to the
latest schema; a PostgreSQL database must already be there (`stardag db upgrade`). It runs in
local mode: every request acts as the one local user, owner of the local organization.
"""

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from cross_web import HTTPException
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from stardag_graphql.context import Context
from stardag_graphql.database import create_engine, create_sessionmaker
from stardag_graphql.errors import ServerConfigError
from stardag_graphql.ide import OfflineGraphQL, static_mount
from stardag_graphql.migrations import current_revision, ensure_schema, head_revision
from stardag_graphql.notify import Notifier
from stardag_graphql.schema import schema
from stardag_graphql.settings import Settings, masked_url
from stardag_graphql.store.apikeys import api_key_identity
from stardag_graphql.store.tenancy import Identity, ensure_local_identity


@dataclass
class Registry:
    """What the app holds while it runs: the database and the local identity."""

    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    identity: Identity
    notifier: Notifier


class RegistryGraphQL(OfflineGraphQL[Context, None]):
    """The GraphQL view: each request gets a fresh `Context` with its own request id."""

    def __init__(self, registry: "RegistryHolder", settings: Settings) -> None:
        super().__init__(
            schema,
            subscription_protocols=[GRAPHQL_TRANSPORT_WS_PROTOCOL],
            allowed_origins=settings.allowed_origins,
        )
        self.registry = registry

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        """A context for one request, with its request id in the `X-Request-Id` header."""
        running = self.registry.get()
        request_id = uuid.uuid4().hex[:16]
        if isinstance(response, Response):
            response.headers["X-Request-Id"] = request_id
        return Context(
            sessions=running.sessions,
            identity=await _identity(request, running),
            notifier=running.notifier,
            request_id=request_id,
        )


async def _identity(request: Request | WebSocket, running: Registry) -> Identity:
    """Who the request acts as: an API key's workspace, or the local user without one."""
    header = request.headers.get("authorization")
    if header is None:
        return running.identity
    scheme, _, credential = header.partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise HTTPException(401, "the Authorization header must read 'Bearer <API key>'")
    async with running.sessions() as session:
        identity = await api_key_identity(session, credential.strip())
    if identity is None:
        raise HTTPException(
            401,
            "the API key is not valid (unknown, revoked or mistyped): create a new one with "
            "the createApiKey mutation",
        )
    return identity


class RegistryHolder:
    """The running registry, set by the app's lifespan."""

    def __init__(self) -> None:
        self._registry: Registry | None = None

    def get(self) -> Registry:
        """The running registry; an error outside the app's lifespan."""
        if self._registry is None:
            raise RuntimeError("the registry is not running: serve the app with its lifespan")
        return self._registry

    def set(self, registry: Registry | None) -> None:
        """Set (or clear) the running registry."""
        self._registry = registry


def create_app(settings: Settings) -> Starlette:
    """The registry app for `settings`."""
    holder = RegistryHolder()
    graphql = RegistryGraphQL(holder, settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        engine = await open_database(settings)
        try:
            sessions = create_sessionmaker(engine)
            async with sessions() as session:
                identity = await ensure_local_identity(session)
            holder.set(Registry(engine, sessions, identity, Notifier()))
            yield
        finally:
            holder.set(None)
            await engine.dispose()

    async def healthz(request: Request) -> Response:
        async with holder.get().engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            Route("/healthz", healthz),
            static_mount(),
        ],
        lifespan=lifespan,
    )


async def open_database(settings: Settings) -> AsyncEngine:
    """An engine on the schema-current database; `ServerConfigError` if it needs upgrading."""
    if make_url(settings.database_url).get_backend_name() == "sqlite":
        await ensure_schema(settings)
    engine = create_engine(settings)
    revision, head = await current_revision(engine), head_revision()
    if revision != head:
        await engine.dispose()
        raise ServerConfigError(
            f"the database {masked_url(settings.database_url)} is at schema revision "
            f"{revision or 'none (empty)'}, not {head}: run `stardag db upgrade`"
        )
    return engine
