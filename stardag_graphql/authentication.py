"""Who a request acts as, decided before GraphQL runs, and the routes where people sign in.

A request carries `Authorization: Bearer <credential>`: a workspace API key (`sd_...`) or,
in server mode, a registry token that `POST /auth/token` exchanged for the identity
provider's token. In local mode a request without credentials acts as the local user. Each
request reads the caller's role afresh, so a removal, a demotion or a revoked key takes
effect on the next request. Callers are rate-limited per key, per user and, on sign-in, per
address; over the limit the answer is 429 with `Retry-After`.

A refused HTTP request gets a GraphQL-shaped JSON error with its code (401 UNAUTHENTICATED,
403 FORBIDDEN, 429 RATE_LIMITED); a refused websocket is accepted and closed at once with
code 4401, 4403 or 4429 and the message as the reason.
"""

import functools
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from stardag_graphql.database import transaction
from stardag_graphql.errors import CredentialError, ForbiddenError, RegistryError
from stardag_graphql.models import Organization
from stardag_graphql.oidc import ProviderVerifier
from stardag_graphql.ratelimit import RateLimiter
from stardag_graphql.store.accounts import sign_in
from stardag_graphql.store.apikeys import KEY_PREFIX, api_key_identity, mark_used
from stardag_graphql.store.tenancy import (
    Identity,
    local_identity,
    member_identity,
    memberships_of,
)
from stardag_graphql.tokens import TokenSigner

SIGN_IN = "sign in with `stardag auth login`"
MAX_CREDENTIAL_LENGTH = 8192


class RateLimitedError(RegistryError):
    """Too many requests from one caller: retry after `retry_after` seconds."""

    code = "RATE_LIMITED"

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many requests: retry in {retry_after} s")
        self.retry_after = retry_after


@dataclass
class ServerAuth:
    """What server mode adds: the provider's verifier and the registry's token signer."""

    provider: ProviderVerifier
    signer: TokenSigner
    token_ttl: timedelta


class Authenticator:
    """Turns a request's credentials into an `Identity`; `auth` is None in local mode.

    `reads` (default: `sessions`) are the sessions that identify callers: each request reads
    its caller's roles and workspaces in one statement, which needs no transaction around it.
    Its writes (a key's use, a first sign-in) hold `write_gate` (see `create_write_gate`).
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        limiter: RateLimiter,
        auth: ServerAuth | None,
        local_user: uuid.UUID | None,
        *,
        reads: async_sessionmaker[AsyncSession] | None = None,
        write_gate: AbstractAsyncContextManager[Any] | None = None,
    ) -> None:
        self.sessions = sessions
        self.reads = reads or sessions
        self.write_gate = write_gate or nullcontext()
        self.limiter = limiter
        self.auth = auth
        self.local_user = local_user

    async def identify(self, headers: Headers, *, count: bool = True) -> Identity:
        """The identity the credentials in `headers` act as; `CredentialError` or
        `RateLimitedError` if the request may not go on. With `count=False` (a long-lived
        subscription checking again) the request is not counted against the rate limit."""
        credential = bearer(headers)
        if credential is not None and credential.startswith(KEY_PREFIX):
            return await self._key_identity(credential, count=count)
        async with self.reads() as session:
            if credential is None:
                if self.auth is not None or self.local_user is None:
                    raise CredentialError(
                        "this registry needs a credential: send 'Authorization: Bearer <token>' "
                        f"with a registry token ({SIGN_IN}) or a workspace API key"
                    )
                return await local_identity(session, self.local_user)
            if self.auth is None:
                raise CredentialError(
                    "this registry runs in local mode, without sign-in: send no credential, "
                    "or a workspace API key"
                )
            claims = self.auth.signer.verify(credential)
            if count:
                self.limit(f"user:{claims.user_id}")
            return await member_identity(session, claims.user_id, claims.organization_id)

    async def _key_identity(self, credential: str, *, count: bool) -> Identity:
        """The identity of a request with an API key. Its use, when due to be recorded, is
        written after the read session is closed, so that waiting at the write gate it holds
        no pooled connection."""
        async with self.reads() as session:
            key = await api_key_identity(session, credential)
        if key is None:
            raise CredentialError(
                "the API key is not valid (unknown, revoked or mistyped): ask an admin "
                "of the workspace for a new one"
            )
        if count:
            self.limit(f"key:{credential[: len(KEY_PREFIX) + 10]}")
        if key.record_use:
            async with transaction(self.sessions, self.write_gate) as writes:
                await mark_used(writes, key.key_id)
        return key.identity

    def limit(self, caller: str) -> None:
        """Count one request of `caller`; `RateLimitedError` when over the limit."""
        retry_after = self.limiter.retry_after(caller)
        if retry_after is not None:
            raise RateLimitedError(retry_after)


def bearer(headers: Headers) -> str | None:
    """The credential of an `Authorization: Bearer` header; None without the header."""
    header = headers.get("authorization")
    if header is None:
        return None
    scheme, _, credential = header.partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential or len(credential) > MAX_CREDENTIAL_LENGTH:
        raise CredentialError(
            "the Authorization header must read 'Bearer <registry token or API key>'"
        )
    return credential


class RequireIdentity:
    """ASGI middleware: resolve the caller into `scope["state"]["identity"]`, or refuse.

    `scope["state"]["reidentify"]` checks the same credentials again, for subscriptions that
    outlive a membership or a key.
    """

    def __init__(self, app: ASGIApp, authenticator: Callable[[], Authenticator]) -> None:
        self.app = app
        self.authenticator = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        authenticator, headers = self.authenticator(), Headers(scope=scope)
        try:
            identity = (
                NOBODY
                if _asks_for_the_ide_page(scope, headers)
                else await authenticator.identify(headers)
            )
        except RegistryError as error:
            await refuse(error, scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state["identity"] = identity
        state["reidentify"] = functools.partial(authenticator.identify, headers, count=False)
        try:
            await self.app(scope, receive, send)
        except ClientDisconnect:
            return  # the caller left before sending its whole request: no one to answer


NOBODY = Identity(None, {})
"""Who loads the GraphiQL page without credentials: it reaches nothing."""


def _asks_for_the_ide_page(scope: Scope, headers: Headers) -> bool:
    """A browser asking for GraphiQL's page (static HTML), which needs no credentials: the
    operations it then sends carry them, set in its headers editor."""
    return (
        scope["type"] == "http"
        and scope["method"] == "GET"
        and "authorization" not in headers
        and b"query=" not in scope.get("query_string", b"")
        and "text/html" in headers.get("accept", "")
    )


STATUS = {"UNAUTHENTICATED": 401, "FORBIDDEN": 403, "RATE_LIMITED": 429}


def error_response(error: RegistryError) -> Response:
    """A GraphQL-shaped JSON error with the HTTP status of its code."""
    status = STATUS.get(error.code, 400)
    headers = {}
    if isinstance(error, RateLimitedError):
        headers["Retry-After"] = str(error.retry_after)
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="stardag"'
    body = {"errors": [{"message": str(error), "extensions": {"code": error.code}}]}
    return JSONResponse(body, status_code=status, headers=headers)


async def refuse(error: RegistryError, scope: Scope, receive: Receive, send: Send) -> None:
    """Answer a refused request: an error response, or a websocket closed with the reason."""
    if scope["type"] == "http":
        await error_response(error)(scope, receive, send)
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept", "subprotocol": _first_subprotocol(scope)})
    code = 4000 + STATUS.get(error.code, 400)
    await send({"type": "websocket.close", "code": code, "reason": str(error)[:120]})


def _first_subprotocol(scope: Scope) -> str | None:
    protocols: list[str] = scope.get("subprotocols") or []
    return protocols[0] if protocols else None


async def exchange_token(
    request: Request, auth: ServerAuth, authenticator: Authenticator
) -> Response:
    """`POST /auth/token`: the provider's token (or a registry token) for a registry token.

    The JSON body is `{"subject_token": ..., "organization": <slug, optional>}`; without an
    organization the token is for the caller's first organization by slug.
    """
    try:
        body = await _json_object(request)
        subject_token = body.get("subject_token")
        organization = body.get("organization")
        if not isinstance(subject_token, str) or not subject_token:
            raise CredentialError(
                f"the request needs 'subject_token': the identity provider's id token ({SIGN_IN})"
            )
        if organization is not None and not isinstance(organization, str):
            raise ForbiddenError("'organization' must be an organization's slug")
        client = request.client.host if request.client else "unknown"
        authenticator.limit(f"sign-in:{client}")
        user_id = await _subject(authenticator, auth, subject_token)
        async with authenticator.reads() as session:
            organization_row = await _organization_of(session, user_id, organization)
        token, expires_at = auth.signer.mint(user_id, organization_row.id, auth.token_ttl)
    except RegistryError as error:
        return error_response(error)
    return JSONResponse(
        {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": int(auth.token_ttl.total_seconds()),
            "expires_at": expires_at.isoformat(),
            "organization": {"slug": organization_row.slug, "name": organization_row.name},
        }
    )


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise CredentialError(
            'send a JSON object: {"subject_token": "<id token>", "organization": "<slug>"}'
        )
    return body


async def _subject(authenticator: Authenticator, auth: ServerAuth, token: str) -> uuid.UUID:
    """The user a subject token speaks for: a registry token's user, or the provider's
    person, signed in (and provisioned on their first login)."""
    try:
        return auth.signer.verify(token).user_id
    except CredentialError:
        person = await auth.provider.verify(token)
    async with authenticator.write_gate, authenticator.sessions() as session:
        return (await sign_in(session, person)).id


async def _organization_of(
    session: AsyncSession, user_id: uuid.UUID, slug: str | None
) -> Organization:
    """The user's organization `slug`, or their first by slug."""
    for _membership, organization in await memberships_of(session, user_id):
        if slug is None or organization.slug == slug:
            return organization
    raise ForbiddenError(
        f"you are not a member of an organization {slug!r}: ask its owners for an invite"
        if slug is not None
        else "you are not a member of any organization: ask an owner of one for an invite"
    )
