"""Signing people in to a team deployment of the GUI, through the registry's identity provider.

With ``Connection.sign_in`` each person signs in before the GUI acts for them. The GUI finds
the provider through the registry (``GET /auth/config``), sends the browser there for the
authorization code flow with PKCE (S256) and back to ``<public URL>/auth/callback``, trades the
provider's access token for a registry token (``POST /auth/token``), and keeps the registry
token and the provider's refresh token in the person's server-side storage
(``app.storage.user``; the browser holds only its signed session cookie). Pages act with the
registry token, renewed through the refresh token before it expires. ``/auth/signout``
forgets both.

A sign-in is bound to the browser that finished it: the callback puts a fresh random key in
that browser's signed cookie and beside the sign-in, and a request whose cookie lacks the key
is not signed in. A session id planted in someone's browser before they sign in (session
fixation) therefore gives whoever planted it nothing afterwards.

The routes are answered by the root page before any page is built::

    /auth/signin    redirects to the provider
    /auth/callback  where the provider redirects back
    /auth/signout   forgets the sign-in

No secret (code, verifier, token) is logged, shown or put in an error message.
"""

import asyncio
import base64
import hashlib
import secrets
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import httpx
from nicegui import app, ui
from nicegui.persistence import PersistentDict
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from stardag_core.credentials import LoginRecord, RegistryToken
from stardag_core.exceptions import ConfigError, RegistryError
from stardag_core.login import TIMEOUT, AuthConfig, Provider, ProviderTokens, exchange, renew

SIGNIN = "/auth/signin"
CALLBACK = "/auth/callback"
SIGNOUT = "/auth/signout"
SIGNED_IN = "signin"
"""The key of a person's sign-in in ``app.storage.user``."""
PENDING = "signin-pending"
"""The key of a sign-in under way (its state and PKCE verifier) in ``app.storage.user``."""
BOUND = "signin-browser"
"""The key of the random key binding a sign-in to its browser, in ``app.storage.user`` and
in that browser's signed cookie (``app.storage.browser``)."""
RENEW_EVERY = 15.0
"""Seconds between checks, on an open page, whether the registry token needs renewing."""


@dataclass(frozen=True)
class Discovery:
    """Where the registry's people sign in: its ``/auth/config`` and the provider's endpoints."""

    config: AuthConfig
    provider: Provider


class SignIn:
    """The sign-in of every person using a GUI on the registry at ``registry_url``.

    ``public_url`` is where browsers reach the GUI (the provider redirects back to it); None
    takes it from each request, which is right unless a proxy rewrites the address.
    """

    def __init__(self, registry_url: str, public_url: str | None = None) -> None:
        self.registry_url = registry_url.rstrip("/")
        self.public_url = public_url.rstrip("/") if public_url else None
        self._discovery: Discovery | None = None
        # One renewal at a time per browser session (its tabs share the sign-in, and the
        # provider rotates refresh tokens), kept while a page of that session is open.
        self._renewals: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    def __repr__(self) -> str:
        return f"SignIn({self.registry_url!r})"

    async def gate(self, request: Request) -> "Response | Person | None":
        """Let only signed-in people through: the response to a sign-in route, the signed-in
        person (their token kept fresh while the page is open), or None once the sign-in page
        is shown instead of the GUI."""
        try:
            response = await self.answer(request)
            person = await self.person() if response is None else None
        except RegistryError as error:
            self.page(str(error))
            return None
        if response is not None:
            return response
        if person is None:
            self.page()
            return None
        ui.timer(RENEW_EVERY, person.keep_fresh)
        return person

    async def answer(self, request: Request) -> Response | None:
        """The response to a sign-in route, None for every other path; ``RegistryError`` when
        the provider or the registry refuses or cannot be reached."""
        path = request.url.path
        if path == SIGNIN:
            return await self._start(request)
        if path == CALLBACK:
            return await self._finish(request)
        if path == SIGNOUT:
            app.storage.user.pop(SIGNED_IN, None)
            app.storage.user.pop(BOUND, None)
            return RedirectResponse("/", status_code=303)
        return None

    async def person(self) -> "Person | None":
        """The person of this browser session with a fresh registry token; None when nobody is
        signed in (in this browser) or their sign-in can no longer be renewed
        (``RegistryError`` when the provider or the registry cannot be reached to renew it)."""
        bound = app.storage.user.get(BOUND)
        if not isinstance(bound, str) or not secrets.compare_digest(
            bound, str(app.storage.browser.get(BOUND, ""))
        ):
            return None
        session = str(app.storage.browser["id"])
        renewal = self._renewals.get(session)
        if renewal is None:
            renewal = self._renewals[session] = asyncio.Lock()
        person = Person(app.storage.user, renewal)
        return person if await person.fresh() else None

    def page(self, problem: str | None = None) -> None:
        """What a person who is not signed in sees: a way to sign in, and why the last
        attempt failed."""
        ui.page_title("stardag: sign in")
        with ui.card().classes("m-8 max-w-md items-stretch sign-in"):
            ui.label("stardag").classes("text-h5")
            ui.label("Sign in to see your organization's builds, tasks and settings.")
            if problem:
                ui.label(problem).classes("text-negative sign-in-problem")
            ui.link("Sign in", SIGNIN).classes("sign-in-link text-lg")

    async def _discover(self) -> Discovery:
        if self._discovery is None:
            self._discovery = await asyncio.to_thread(discover, self.registry_url)
        return self._discovery

    def _redirect_uri(self, request: Request) -> str:
        base = self.public_url or str(request.base_url).rstrip("/")
        return f"{base}{CALLBACK}"

    async def _start(self, request: Request) -> Response:
        discovery = await self._discover()
        verifier, state = secrets.token_urlsafe(64), secrets.token_urlsafe(24)
        app.storage.user[PENDING] = {"state": state, "verifier": verifier}
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        query = urlencode(
            {
                "response_type": "code",
                "client_id": discovery.config.client_id,
                "redirect_uri": self._redirect_uri(request),
                "scope": discovery.config.scopes,
                "state": state,
                "code_challenge": challenge.rstrip(b"=").decode(),
                "code_challenge_method": "S256",
            }
        )
        return RedirectResponse(
            f"{discovery.provider.authorization_endpoint}?{query}", status_code=303
        )

    async def _finish(self, request: Request) -> Response:
        pending = app.storage.user.pop(PENDING, None)
        params = request.query_params
        if not isinstance(pending, dict) or params.get("state") != pending.get("state"):
            raise RegistryError("this sign-in answer is not for this browser: sign in again")
        if "error" in params:
            description = params.get("error_description", "")
            raise RegistryError(
                f"the identity provider refused the sign-in: {params['error']}"
                + (f" ({description})" if description else "")
            )
        discovery = await self._discover()
        record, token = await asyncio.to_thread(
            redeem,
            self.registry_url,
            discovery,
            params.get("code", ""),
            str(pending["verifier"]),
            self._redirect_uri(request),
        )
        save(app.storage.user, record, token)
        binding = secrets.token_urlsafe(32)
        app.storage.user[BOUND] = app.storage.browser[BOUND] = binding
        return RedirectResponse("/", status_code=303)


class Person:
    """A signed-in person's registry credential, kept in their server-side storage.

    Calling it gives the current registry token (what ``AsyncRegistryClient`` sends); ``fresh``
    renews it before it expires; ``switch`` trades it for a token of another organization.
    """

    def __init__(self, store: PersistentDict, renewal: asyncio.Lock) -> None:
        self._store = store
        self._renewal = renewal

    def __repr__(self) -> str:
        return "Person(<signed in>)"

    def __call__(self) -> str | None:
        signed_in = saved(self._store)
        return signed_in[1].access_token.get_secret_value() if signed_in else None

    async def fresh(self) -> bool:
        """Whether the person is still signed in, with a registry token that is not about to
        expire (renewed if it was); a sign-in the provider no longer renews is forgotten."""
        async with self._renewal:
            signed_in = saved(self._store)
            if signed_in is None:
                return False
            record, token = signed_in
            if token.fresh():
                return True
            try:
                record, token = await asyncio.to_thread(renew, record, token.organization)
            except ConfigError:
                self._store.pop(SIGNED_IN, None)
                return False
            save(self._store, record, token)
            return True

    async def keep_fresh(self) -> None:
        """Renew the token if due; reload the page onto the sign-in when the sign-in ended.
        A registry or provider that cannot be reached now is tried again at the next check."""
        try:
            signed_in = await self.fresh()
        except RegistryError:
            return
        if not signed_in:
            ui.navigate.reload()

    async def switch(self, organization: str) -> None:
        """Act in ``organization`` (a slug) from now on: registry tokens reach one organization
        each, so the current one is exchanged for one of ``organization``."""
        async with self._renewal:
            signed_in = saved(self._store)
            if signed_in is None:
                raise RegistryError("you are signed out: sign in again")
            record, token = signed_in
            token = await asyncio.to_thread(
                swap, record.registry_url, token.access_token.get_secret_value(), organization
            )
            save(self._store, record, token)


def discover(registry_url: str) -> Discovery:
    """Where the people of the registry at ``registry_url`` sign in; ``RegistryError`` when it
    runs in local mode (nobody signs in there)."""
    with httpx.Client(timeout=TIMEOUT) as http:
        config = AuthConfig.fetch(http, registry_url)
        if config is None:
            raise RegistryError(
                f"the registry at {registry_url} runs in local mode, where nobody signs in: "
                "run the GUI without sign-in"
            )
        return Discovery(config, Provider.discover(http, config.issuer))


def redeem(
    registry_url: str, discovery: Discovery, code: str, verifier: str, redirect_uri: str
) -> tuple[LoginRecord, RegistryToken]:
    """The sign-in an authorization code stands for: the provider's tokens for it (proved by
    the PKCE ``verifier``), then a registry token for the person's first organization."""
    config, provider = discovery.config, discovery.provider
    with httpx.Client(timeout=TIMEOUT) as http:
        try:
            response = http.post(
                provider.token_endpoint,
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": redirect_uri,
                    "client_id": config.client_id,
                    "code_verifier": verifier,
                },
            )
        except httpx.HTTPError as error:
            raise RegistryError(
                f"cannot reach the identity provider {provider.issuer} ({type(error).__name__})"
            ) from None
        if not response.is_success:
            raise RegistryError(
                f"the identity provider {provider.issuer} refused the sign-in "
                f"({_error_of(response)}): sign in again"
            )
        tokens = ProviderTokens.parse(response.json())
        token = exchange(http, registry_url, tokens.access_token.get_secret_value(), None)
    record = LoginRecord(
        registry_url=registry_url,
        issuer=provider.issuer,
        client_id=config.client_id,
        token_endpoint=provider.token_endpoint,
        scopes=config.scopes,
        refresh_token=tokens.refresh_token,
        signed_in_at=datetime.now(UTC),
    )
    return record, token


def swap(registry_url: str, registry_token: str, organization: str) -> RegistryToken:
    """A registry token for ``organization`` in exchange for one of another organization."""
    with httpx.Client(timeout=TIMEOUT) as http:
        return exchange(http, registry_url, registry_token, organization)


def save(store: PersistentDict, record: LoginRecord, token: RegistryToken) -> None:
    """Keep a person's sign-in in their server-side storage."""
    refresh = record.refresh_token.get_secret_value() if record.refresh_token else None
    store[SIGNED_IN] = {
        "record": {**record.model_dump(mode="json"), "refresh_token": refresh},
        "token": {
            **token.model_dump(mode="json"),
            "access_token": token.access_token.get_secret_value(),
        },
    }


def saved(store: PersistentDict) -> tuple[LoginRecord, RegistryToken] | None:
    """A person's kept sign-in; None when there is none."""
    kept: Any = store.get(SIGNED_IN)
    if not isinstance(kept, dict):
        return None
    return LoginRecord.model_validate(kept["record"]), RegistryToken.model_validate(kept["token"])


def _error_of(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    error = body.get("error") if isinstance(body, dict) else None
    return str(error) if error else f"HTTP {response.status_code}"
