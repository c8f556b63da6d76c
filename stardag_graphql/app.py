"""The registry as an ASGI app: GraphQL over HTTP and websockets, GraphiQL, sign-in routes
and a health check.

```python
import uvicorn
from stardag_graphql.app import create_app
from stardag_graphql.settings import Settings

uvicorn.run(create_app(Settings()), host="127.0.0.1", port=8000)
```

At start the app connects to its database: the embedded SQLite upgrades itself to the
latest schema; a PostgreSQL database must already be there (`stardag db upgrade`). In local
mode a request without credentials acts as the local user, owner of the local organization;
in server mode (`Settings.oidc_issuer`) every request needs a registry token or an API key,
and `POST /auth/token` exchanges the identity provider's token for a registry token.
"""

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from stardag_graphql.authentication import (
    Authenticator,
    RequireIdentity,
    ServerAuth,
    exchange_token,
)
from stardag_graphql.context import Context
from stardag_graphql.database import (
    create_engine,
    create_read_sessionmaker,
    create_sessionmaker,
    create_write_gate,
)
from stardag_graphql.errors import ServerConfigError
from stardag_graphql.ide import OfflineGraphQL, static_mount
from stardag_graphql.migrations import current_revision, ensure_schema, head_revision
from stardag_graphql.notify import Notifier
from stardag_graphql.oidc import ProviderVerifier
from stardag_graphql.ratelimit import RateLimiter
from stardag_graphql.schema import schema
from stardag_graphql.settings import Settings, masked_url
from stardag_graphql.store.tenancy import ensure_local_identity
from stardag_graphql.tokens import TokenSigner


@dataclass
class Registry:
    """What the app holds while it runs: the database (sessions, and `reads` for reads outside a
    transaction), the notifier and who may sign in."""

    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    reads: async_sessionmaker[AsyncSession]
    notifier: Notifier
    authenticator: Authenticator
    write_gate: contextlib.AbstractAsyncContextManager[Any]


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
            identity=request.state.identity,
            notifier=running.notifier,
            request_id=request_id,
            reidentify=request.state.reidentify,
            read_sessions=running.reads,
            write_gate=running.write_gate,
        )


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

    def authenticator(self) -> Authenticator:
        """The running registry's authenticator."""
        return self.get().authenticator


def create_app(settings: Settings) -> Starlette:
    """The registry app for `settings`."""
    holder = RegistryHolder()
    graphql = RequireIdentity(RegistryGraphQL(holder, settings), holder.authenticator)
    auth = server_auth(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        engine = await open_database(settings)
        try:
            sessions, write_gate = create_sessionmaker(engine), create_write_gate(engine)
            local_user = None
            if auth is None:
                async with sessions() as session:
                    local_user = (await ensure_local_identity(session)).user_id
            limiter = RateLimiter(settings.rate_limit_per_minute)
            reads = create_read_sessionmaker(engine)
            authenticator = Authenticator(
                sessions, limiter, auth, local_user, reads=reads, write_gate=write_gate
            )
            holder.set(Registry(engine, sessions, reads, Notifier(), authenticator, write_gate))
            yield
        finally:
            holder.set(None)
            if auth is not None:
                await auth.provider.aclose()
            await engine.dispose()

    async def healthz(request: Request) -> Response:
        async with holder.get().engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        return JSONResponse({"status": "ok"})

    async def auth_config(request: Request) -> Response:
        if auth is None:
            return JSONResponse({"mode": "local"})
        return JSONResponse(
            {
                "mode": "server",
                "issuer": settings.oidc_issuer,
                "client_id": settings.oidc_client_id,
                "audience": settings.audience,
                "scopes": "openid email profile offline_access",
                "token_endpoint": f"{settings.public_url.rstrip('/')}/auth/token",
            }
        )

    async def token(request: Request) -> Response:
        if auth is None:
            return JSONResponse(
                {"error": "this registry runs in local mode: no sign-in is needed"},
                status_code=404,
            )
        return await exchange_token(request, auth, holder.authenticator())

    async def jwks(request: Request) -> Response:
        return JSONResponse(auth.signer.jwks() if auth else {"keys": []})

    return Starlette(
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            Route("/healthz", healthz),
            Route("/auth/config", auth_config),
            Route("/auth/token", token, methods=["POST"]),
            Route("/.well-known/jwks.json", jwks),
            static_mount(),
        ],
        lifespan=lifespan,
    )


def server_auth(settings: Settings) -> ServerAuth | None:
    """Server mode's verifier and signer, or None in local mode."""
    if settings.oidc_issuer is None or settings.audience is None:
        return None
    return ServerAuth(
        provider=ProviderVerifier(settings.oidc_issuer, settings.audience),
        signer=TokenSigner.load_or_create(settings.signing_key_file, settings.public_url),
        token_ttl=timedelta(seconds=settings.token_ttl_seconds),
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
