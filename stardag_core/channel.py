"""A connection to a registry's GraphQL endpoint, on `gql` over httpx, shared by threads.

Requests carry the caller's bearer, asked for anew each time so a short-lived token can be
refreshed in between. A failure is one of two kinds: `RegistryUnavailable` (unreachable,
overloaded, or a refusal that waiting may cure: try again later) or `RegistryRefused` (the
request itself is wrong: sending it again will not help). `registry_error` makes them, with
the registry's own words, for every client of a registry (this one, the command line's and
the GUI's asynchronous one).
"""

import ssl
import threading
from collections.abc import Callable, Generator
from functools import cache, lru_cache
from typing import Any

import httpx
from gql import Client, GraphQLRequest, gql
from gql.transport.exceptions import (
    TransportConnectionFailed,
    TransportQueryError,
    TransportServerError,
)
from gql.transport.httpx import HTTPXTransport

from stardag_core.exceptions import RegistryError

Credential = str | Callable[[], str | None] | None
"""A bearer for the registry: a registry token or workspace API key, a function that returns
the current one (called before each request, so it may refresh), or None in local mode."""

# Refusals that waiting may cure; any other GraphQL error means the message itself is wrong.
TRANSIENT_CODES = frozenset({"UNAUTHENTICATED", "RATE_LIMITED", "INTERNAL_SERVER_ERROR"})
SIGN_IN = "run `stardag auth login`"


class RegistryUnavailable(RegistryError):
    """The registry could not answer now (unreachable, overloaded, or refusing for a reason
    that waiting may cure); the request can be retried."""


class RegistryRefused(RegistryError):
    """The registry refused the request as it is; sending it again will not help."""


class Channel:
    """One connection to a registry's GraphQL endpoint, shared by threads."""

    def __init__(
        self,
        url: str,
        credential: Credential,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url
        self._credential = credential
        self._timeout = timeout
        self._transport = transport
        self._session: Any = None
        self._client: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Channel({self.url!r})"

    def execute(self, document: str, variables: dict[str, Any]) -> dict[str, Any]:
        """The data of one request; `RegistryUnavailable` or `RegistryRefused` otherwise."""
        try:
            session = self._connected()
            result = session.execute(TextRequest(document, variables))
        except Exception as error:
            raise registry_error(self.url, error) from None
        return dict(result)

    def open(self) -> None:
        """Set the connection up now rather than at its first request: its client and TLS
        settings cost some 30 ms of CPU, which a request then waits for. Sends nothing."""
        try:
            self._connected()
        except Exception as error:
            raise registry_error(self.url, error) from None

    def close(self) -> None:
        """Close the connection (a later request opens a new one)."""
        with self._lock:
            if self._client is not None:
                self._client.close_sync()
            self._client = self._session = None

    def _connected(self) -> Any:
        with self._lock:
            if self._session is None:
                extra: dict[str, Any] = {}
                if self._transport is not None:
                    extra["transport"] = self._transport
                transport = HTTPXTransport(
                    url=f"{self.url}/graphql",
                    auth=Bearer(self._credential),
                    timeout=self._timeout,
                    verify=tls_context(self.url),
                    **extra,
                )
                client = Client(transport=transport, fetch_schema_from_transport=False)
                self._session = client.connect_sync()  # type: ignore[no-untyped-call]
                self._client = client
            return self._session


def tls_context(url: str) -> ssl.SSLContext:
    """The TLS settings for a connection to `url`: httpx's defaults for `https://`, made
    once per process and shared, since making them reads the bundle of certificate
    authorities (20 to 30 ms of CPU, paid while a build starts). A plain `http://` registry
    never uses TLS, so it gets settings that trust no authority: nothing to read, and
    nothing to verify a server with, should a request ever be sent over TLS anyway."""
    return _verified_tls() if url.lower().startswith("https:") else _unused_tls()


@cache
def _verified_tls() -> ssl.SSLContext:
    return httpx.create_ssl_context()


@cache
def _unused_tls() -> ssl.SSLContext:
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def registry_error(url: str, error: Exception) -> RegistryError:
    """The error to raise for a request to the registry at `url` that failed with `error`:
    `RegistryRefused` when sending it again will not help, `RegistryUnavailable` when it may."""
    where = f"the registry at {url}"
    if isinstance(error, TransportQueryError):
        codes = {
            (problem.get("extensions") or {}).get("code")
            for problem in (error.errors or [])
            if isinstance(problem, dict)
        }
        if codes & TRANSIENT_CODES or not codes:
            return RegistryUnavailable(f"{where} refused for now: {error_messages(error.errors)}")
        return RegistryRefused(f"{where} refused: {error_messages(error.errors)}")
    if isinstance(error, TransportServerError):
        return RegistryUnavailable(f"{where} answered HTTP {error.code}: {error}")
    if isinstance(error, TransportConnectionFailed | httpx.HTTPError | OSError):
        cause = error.__cause__ or error
        return RegistryUnavailable(f"cannot reach {where} ({cause}); is it running?")
    return RegistryUnavailable(f"{where} answered something unexpected: {error!r}")


def error_messages(errors: list[Any] | None) -> str:
    """The messages of GraphQL errors, with a hint when a credential is missing or stale."""
    parts, hint = [], ""
    for error in errors or []:
        if isinstance(error, dict):
            parts.append(str(error.get("message", error)))
            if (error.get("extensions") or {}).get("code") == "UNAUTHENTICATED":
                hint = f" ({SIGN_IN}, or set STARDAG_API_KEY)"
        else:
            parts.append(str(error))
    return "; ".join(parts) + hint


class Bearer(httpx.Auth):
    """Sends the credential's current bearer with each request (none in local mode)."""

    def __init__(self, credential: Credential) -> None:
        self._credential = credential

    def __repr__(self) -> str:
        return "Bearer(<hidden>)"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, Any, None]:
        credential = self._credential
        bearer = credential() if callable(credential) else credential
        if bearer:
            request.headers["Authorization"] = f"Bearer {bearer}"
        yield request


class TextRequest(GraphQLRequest):
    """A request that sends its document as written, parsed once per process.

    gql parses a document's text for every request and prints the parsed document back to
    text to send it: half a millisecond of CPU for a lock request, and the registry parses
    what it receives anyway.
    """

    def __init__(self, document: str, variables: dict[str, Any] | None = None) -> None:
        super().__init__(_parsed(document), variable_values=variables)
        self.text = document

    @property
    def payload(self) -> dict[str, Any]:
        """The request's JSON body, as gql's own but with the document's text."""
        payload: dict[str, Any] = {"query": self.text}
        if self.variable_values:
            payload["variables"] = self.variable_values
        return payload


@lru_cache(maxsize=256)  # documents are the code's constants; the bound is for any that are not
def _parsed(document: str) -> Any:
    return gql(document)
