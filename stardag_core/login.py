"""Signing in to a registry in server mode: at its identity provider, then at the registry.

The registry says where people sign in (``GET /auth/config``: the provider's issuer and the
client id of stardag's command line). ``browser_login`` runs the authorization code flow with
PKCE (S256) in the person's browser and catches the redirect on a loopback port;
``device_login`` runs the device flow, for machines without a browser. ``exchange`` trades
the provider's access token for a registry token of one organization (``POST /auth/token``),
and ``renew`` does it again later with the provider's refresh token.

No secret (code, verifier, token) is logged, shown or put in an error message.
"""

import base64
import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
from pydantic import SecretStr

from stardag_core.credentials import LoginRecord, RegistryToken
from stardag_core.exceptions import ConfigError, RegistryError

TIMEOUT = httpx.Timeout(30.0)
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
LOGIN_AGAIN = "run `stardag auth login` again"


@dataclass(frozen=True)
class AuthConfig:
    """Where a registry's people sign in, as ``GET /auth/config`` says."""

    issuer: str
    client_id: str
    scopes: str

    @classmethod
    def fetch(cls, http: httpx.Client, url: str) -> "AuthConfig | None":
        """The sign-in settings of the registry at ``url``; None when it runs in local mode
        (nobody signs in)."""
        body = _json(http, "GET", f"{url}/auth/config", what=f"the registry at {url}")
        if body.get("mode") == "local":
            return None
        try:
            return cls(str(body["issuer"]), str(body["client_id"]), str(body["scopes"]))
        except KeyError as error:
            raise RegistryError(
                f"the registry at {url} answered /auth/config without {error}: is it a "
                "stardag registry?"
            ) from None


@dataclass(frozen=True)
class Provider:
    """An OpenID Connect provider's endpoints, from its discovery document."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    device_authorization_endpoint: str | None
    revocation_endpoint: str | None

    @classmethod
    def discover(cls, http: httpx.Client, issuer: str) -> "Provider":
        """Read ``<issuer>/.well-known/openid-configuration``."""
        where = f"{issuer.rstrip('/')}/.well-known/openid-configuration"
        body = _json(http, "GET", where, what=f"the identity provider {issuer}")
        try:
            return cls(
                issuer=issuer,
                authorization_endpoint=str(body["authorization_endpoint"]),
                token_endpoint=str(body["token_endpoint"]),
                device_authorization_endpoint=body.get("device_authorization_endpoint"),
                revocation_endpoint=body.get("revocation_endpoint"),
            )
        except KeyError as error:
            raise RegistryError(
                f"the identity provider {issuer} publishes no {error} in its discovery document"
            ) from None


@dataclass(frozen=True)
class ProviderTokens:
    """What the provider issued: an access token and, usually, a refresh token."""

    access_token: SecretStr
    refresh_token: SecretStr | None

    @classmethod
    def parse(cls, body: dict[str, Any]) -> "ProviderTokens":
        """The tokens of a token endpoint's JSON answer."""
        refresh = body.get("refresh_token")
        return cls(SecretStr(str(body["access_token"])), SecretStr(refresh) if refresh else None)


@dataclass(frozen=True)
class DeviceCode:
    """What a person needs to approve a device login: where to go and which code to enter."""

    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_in: int
    interval: int
    device_code: SecretStr = field(repr=False)


def browser_login(
    http: httpx.Client,
    config: AuthConfig,
    provider: Provider,
    open_browser: Callable[[str], object],
    *,
    timeout: float = 300.0,
) -> ProviderTokens:
    """Sign in in a browser: authorization code with PKCE (S256), the redirect caught at
    ``http://127.0.0.1:<free port>/callback``. ``open_browser`` gets the URL to open (also
    for a person to open by hand)."""
    verifier = secrets.token_urlsafe(64)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    state = secrets.token_urlsafe(24)
    with _CallbackServer(state) as callback:
        query = urlencode(
            {
                "response_type": "code",
                "client_id": config.client_id,
                "redirect_uri": callback.redirect_uri,
                "scope": config.scopes,
                "state": state,
                "code_challenge": challenge.rstrip(b"=").decode(),
                "code_challenge_method": "S256",
            }
        )
        open_browser(f"{provider.authorization_endpoint}?{query}")
        params = callback.wait(timeout)
    if "error" in params:
        description = params.get("error_description", "")
        raise RegistryError(
            f"the identity provider refused the sign-in: {params['error']}"
            + (f" ({description})" if description else "")
        )
    body = _json(
        http,
        "POST",
        provider.token_endpoint,
        what="the identity provider's token endpoint",
        data={
            "grant_type": "authorization_code",
            "code": params.get("code", ""),
            "redirect_uri": callback.redirect_uri,
            "client_id": config.client_id,
            "code_verifier": verifier,
        },
    )
    return ProviderTokens.parse(body)


def device_login(
    http: httpx.Client,
    config: AuthConfig,
    provider: Provider,
    show: Callable[[DeviceCode], None],
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> ProviderTokens:
    """Sign in with the device flow: ``show`` tells the person where to go and which code to
    enter; then poll until they approved, refused, or the code expired."""
    if provider.device_authorization_endpoint is None:
        raise RegistryError(
            f"the identity provider {provider.issuer} has no device flow: sign in without "
            "--device, in a browser"
        )
    body = _json(
        http,
        "POST",
        provider.device_authorization_endpoint,
        what="the identity provider's device authorization endpoint",
        data={"client_id": config.client_id, "scope": config.scopes},
    )
    code = DeviceCode(
        user_code=str(body["user_code"]),
        verification_uri=str(body["verification_uri"]),
        verification_uri_complete=body.get("verification_uri_complete"),
        expires_in=int(body.get("expires_in", 600)),
        interval=int(body.get("interval", 5)),
        device_code=SecretStr(str(body["device_code"])),
    )
    show(code)
    interval, deadline = code.interval, time.monotonic() + code.expires_in
    while time.monotonic() < deadline:
        sleep(interval)
        response = _request(
            http,
            "POST",
            provider.token_endpoint,
            what="the identity provider's token endpoint",
            data={
                "grant_type": DEVICE_GRANT,
                "device_code": code.device_code.get_secret_value(),
                "client_id": config.client_id,
            },
        )
        answer = _body(response)
        if response.is_success:
            return ProviderTokens.parse(answer)
        error = answer.get("error")
        if error == "authorization_pending":
            continue
        if error == "slow_down":
            interval += 5
            continue
        if error == "access_denied":
            raise RegistryError("the sign-in was refused on the verification page")
        if error == "expired_token":
            break
        raise RegistryError(f"the identity provider refused the device login: {error}")
    raise RegistryError(f"the device code expired before it was approved: {LOGIN_AGAIN}")


def exchange(
    http: httpx.Client, url: str, subject_token: str, organization: str | None
) -> RegistryToken:
    """A registry token for ``organization`` (None: the first) in exchange for the provider's
    access token, or for another registry token."""
    body = _json(
        http,
        "POST",
        f"{url}/auth/token",
        what=f"the registry at {url}",
        json={"subject_token": subject_token, "organization": organization},
    )
    expires_at = body.get("expires_at")
    return RegistryToken(
        access_token=SecretStr(str(body["access_token"])),
        expires_at=(
            datetime.fromisoformat(expires_at)
            if isinstance(expires_at, str)
            else datetime.now(UTC) + timedelta(seconds=int(body.get("expires_in", 60)))
        ),
        organization=str(body["organization"]["slug"]),
    )


def renew(record: LoginRecord, organization: str | None) -> tuple[LoginRecord, RegistryToken]:
    """A new registry token through the provider's refresh token; the record keeps the
    rotated refresh token."""
    if record.refresh_token is None:
        raise ConfigError(f"the sign-in to {record.registry_url} cannot be renewed: {LOGIN_AGAIN}")
    with httpx.Client(timeout=TIMEOUT) as http:
        response = _request(
            http,
            "POST",
            record.token_endpoint,
            what=f"the identity provider {record.issuer}",
            data={
                "grant_type": "refresh_token",
                "refresh_token": record.refresh_token.get_secret_value(),
                "client_id": record.client_id,
                "scope": record.scopes,
            },
        )
        if response.status_code in (400, 401):
            raise ConfigError(
                f"the sign-in to {record.registry_url} expired or was revoked at the identity "
                f"provider ({_body(response).get('error', response.status_code)}): {LOGIN_AGAIN}"
            )
        tokens = ProviderTokens.parse(_checked(response, f"the identity provider {record.issuer}"))
        token = exchange(
            http, record.registry_url, tokens.access_token.get_secret_value(), organization
        )
    rotated = record.model_copy(
        update={"refresh_token": tokens.refresh_token or record.refresh_token}
    )
    return rotated, token


def revoke(record: LoginRecord) -> bool:
    """Revoke the sign-in's refresh token at its identity provider (RFC 7009); False when
    there is nothing to revoke or the provider offers no revocation. ``RegistryError`` when
    the provider cannot be reached or refuses."""
    if record.refresh_token is None:
        return False
    what = f"the identity provider {record.issuer}"
    with httpx.Client(timeout=TIMEOUT) as http:
        provider = Provider.discover(http, record.issuer)
        if provider.revocation_endpoint is None:
            return False
        _json(
            http,
            "POST",
            provider.revocation_endpoint,
            what=what,
            data={
                "token": record.refresh_token.get_secret_value(),
                "token_type_hint": "refresh_token",
                "client_id": record.client_id,
            },
        )
    return True


class _CallbackServer:
    """A one-shot HTTP server on a loopback port that catches the provider's redirect."""

    def __init__(self, state: str) -> None:
        self.state = state
        self.params: dict[str, str] | None = None
        self.arrived = threading.Event()
        self.server = HTTPServer(("127.0.0.1", 0), self._handler())
        self.redirect_uri = f"http://127.0.0.1:{self.server.server_port}/callback"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "_CallbackServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    def wait(self, timeout: float) -> dict[str, str]:
        """The redirect's query parameters; ``RegistryError`` when none came in time."""
        if not self.arrived.wait(timeout) or self.params is None:
            raise RegistryError(
                f"no sign-in arrived at {self.redirect_uri} within {timeout:.0f} s: finish the "
                f"sign-in in the browser, or {LOGIN_AGAIN} (with --device on a machine "
                "without a browser)"
            )
        return self.params

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        callback = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                params = dict(parse_qsl(parts.query))
                if parts.path != "/callback" or callback.arrived.is_set():
                    self._answer(404, "Nothing here.")
                    return
                if params.get("state") != callback.state:
                    self._answer(400, "This sign-in response is not for this login.")
                    return
                callback.params = params
                callback.arrived.set()
                if "error" in params:
                    self._answer(200, "The sign-in was refused. You can close this tab.")
                else:
                    self._answer(200, "Signed in to stardag. You can close this tab.")

            def _answer(self, status: int, text: str) -> None:
                body = f"<!doctype html><title>stardag</title><p>{text}</p>".encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the request line carries the authorization code."""

        return Handler


def _request(
    http: httpx.Client, method: str, url: str, *, what: str, **kwargs: Any
) -> httpx.Response:
    try:
        return http.request(method, url, **kwargs)
    except httpx.HTTPError as error:
        raise RegistryError(f"cannot reach {what} ({type(error).__name__}: {error})") from None


def _json(http: httpx.Client, method: str, url: str, *, what: str, **kwargs: Any) -> dict[str, Any]:
    return _checked(_request(http, method, url, what=what, **kwargs), what)


def _checked(response: httpx.Response, what: str) -> dict[str, Any]:
    body = _body(response)
    if response.is_success:
        return body
    message = body.get("error_description") or body.get("error")
    errors = body.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        message = errors[0].get("message")
    raise RegistryError(
        f"{what} answered {response.status_code}: {message or response.reason_phrase}"
    )


def _body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
