"""A small, real OpenID Connect provider for tests, in memory, on a loopback port.

Authlib's Flask authorization server with the authorization code flow (PKCE S256 required),
id tokens, JWT access tokens, rotating refresh tokens and the device flow (RFC 8628), served
by werkzeug in a background thread. Tests register users and clients, choose who is logged
in, approve device codes, rotate signing keys, and mint hand-made (or hostile) tokens::

    with IdentityProvider(audience="stardag") as idp:
        idp.add_user("alice", "alice@example.com")
        idp.add_client("cli", ["http://127.0.0.1/callback"])
        idp.login_as("alice")
        ...  # point the code under test at idp.issuer
"""

# Authlib ships no type information: its base classes are `Any` to mypy.
# mypy: disallow-subclassing-any=False

import base64
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import (
    ClientMixin,
    InvalidRequestError,
    TokenMixin,
    grants,
    scope_to_list,
)
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc8628 import (
    DeviceAuthorizationEndpoint,
    DeviceCodeGrant,
    DeviceCredentialDict,
)
from authlib.oidc.core import AuthorizationCodeMixin
from authlib.oidc.core.grants import OpenIDCode
from flask import Flask, Response, request
from joserfc import jwt
from joserfc.jwk import Key, RSAKey
from werkzeug.serving import BaseWSGIServer, make_server

from tests.conftest import free_port

SCOPES = ["openid", "email", "profile", "offline_access"]
GRANT_TYPES = ["authorization_code", "refresh_token", DeviceCodeGrant.GRANT_TYPE]
CLIENT_AUTH_METHODS = ("none", "client_secret_basic", "client_secret_post")
CLAIMS = ["iss", "sub", "aud", "exp", "iat", "nonce", "email", "email_verified"]
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


@dataclass
class User:
    """A person known to the provider."""

    sub: str
    email: str
    email_verified: bool = True

    def get_user_id(self) -> str:
        """The subject identifier, as authlib asks for it."""
        return self.sub


@dataclass
class Client(ClientMixin):
    """A registered client; public clients authenticate with `none` and must use PKCE."""

    client_id: str
    redirect_uris: list[str]
    client_secret: str | None = None

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uris[0]

    def get_allowed_scope(self, scope: str | None) -> str:
        return " ".join(s for s in scope_to_list(scope) or [] if s in SCOPES)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        """Exact match, except that loopback URIs match on any port (RFC 8252, 7.3)."""
        asked = urlsplit(redirect_uri)
        for uri in map(urlsplit, self.redirect_uris):
            if uri == asked or (
                asked.scheme == uri.scheme == "http"
                and asked.hostname == uri.hostname
                and asked.hostname in LOOPBACK_HOSTS
                and (asked.path, asked.query) == (uri.path, uri.query)
            ):
                return True
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        return self.client_secret is not None and hmac.compare_digest(
            client_secret, self.client_secret
        )

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.client_secret is None:
            return method == "none"
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in GRANT_TYPES


@dataclass
class AuthorizationCode(AuthorizationCodeMixin):
    """An issued authorization code with its PKCE challenge and OpenID nonce."""

    code: str
    client_id: str
    sub: str
    redirect_uri: str
    scope: str
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: int = field(default_factory=lambda: int(time.time()))

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time


@dataclass
class RefreshToken(TokenMixin):
    """An issued refresh token; refreshing revokes it and issues a new one."""

    refresh_token: str
    client_id: str
    sub: str
    scope: str
    revoked: bool = False

    def check_client(self, client: Client) -> bool:
        return client.client_id == self.client_id

    def get_scope(self) -> str:
        return self.scope

    def is_revoked(self) -> bool:
        return self.revoked


class IdentityProvider:
    """An OpenID Connect provider on `127.0.0.1:<free port>`, used as a context manager.

    `issuer` is its base URL; access tokens carry `aud=audience`; access and id tokens live
    `token_lifetime` seconds; device clients are told to poll every `device_interval` seconds.
    `users`, `clients` and `current_user` are the registered state, to read.
    """

    def __init__(
        self, *, audience: str = "stardag", token_lifetime: int = 3600, device_interval: int = 1
    ) -> None:
        self.audience = audience
        self.token_lifetime = token_lifetime
        self.device_interval = device_interval
        self.issuer = f"http://127.0.0.1:{free_port()}"
        self.users: dict[str, User] = {}
        self.clients: dict[str, Client] = {}
        self._codes: dict[str, AuthorizationCode] = {}
        self._refresh_tokens: dict[str, RefreshToken] = {}
        self._devices: dict[str, DeviceCredentialDict] = {}
        self._device_grants: dict[str, User | None] = {}  # None: denied
        self._device_polls: dict[str, float] = {}
        self._nonces: set[tuple[str, str]] = set()
        self.current_user: User | None = None
        self._keys = [_new_key()]
        self.app = Flask(__name__)
        self.app.config["OAUTH2_SCOPES_SUPPORTED"] = SCOPES
        self._server = _Server(self)
        self._httpd: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.app.add_url_rule("/.well-known/openid-configuration", view_func=self._discovery)
        self.app.add_url_rule("/jwks", view_func=self._jwks)
        self.app.add_url_rule("/authorize", view_func=self._authorize)
        self.app.add_url_rule("/token", view_func=self._token, methods=["POST"])
        self.app.add_url_rule(
            "/device_authorization", view_func=self._device_authorization, methods=["POST"]
        )
        self.app.add_url_rule("/device", view_func=self._device_page)
        self.app.add_url_rule("/revoke", view_func=self._revoke, methods=["POST"])

    def __repr__(self) -> str:
        return f"<IdentityProvider {self.issuer}>"

    def __enter__(self) -> "IdentityProvider":
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        """Serve on the issuer's port in a daemon thread (http: insecure transport allowed)."""
        os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"
        port = urlsplit(self.issuer).port or 0
        self._httpd = make_server("127.0.0.1", port, self.app, threaded=True)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Stop serving and wait for the server thread."""
        if self._httpd is not None and self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._httpd.server_close()
            self._httpd = self._thread = None

    # Test controls.

    def add_user(self, sub: str, email: str, email_verified: bool = True) -> User:
        """Register a person who can log in."""
        user = self.users[sub] = User(sub, email, email_verified)
        return user

    def add_client(self, client_id: str, redirect_uris: list[str], public: bool = True) -> Client:
        """Register a client; a confidential one (`public=False`) gets a `client_secret`."""
        secret = None if public else secrets.token_urlsafe(24)
        client = self.clients[client_id] = Client(client_id, list(redirect_uris), secret)
        return client

    def live_refresh_tokens(self) -> set[str]:
        """The refresh tokens issued and neither rotated nor revoked."""
        return {token for token, found in self._refresh_tokens.items() if not found.revoked}

    def login_as(self, sub: str | None) -> None:
        """Make `/authorize` log in as this user; with `None` it denies (`access_denied`)."""
        self.current_user = None if sub is None else self._user(sub)

    def approve_device(self, user_code: str, user: str) -> None:
        """Act as `user` approving the device login with this code in a browser."""
        self._pending_user_code(user_code)
        self._device_grants[user_code] = self._user(user)

    def deny_device(self, user_code: str) -> None:
        """Act as the person refusing the device login with this code."""
        self._pending_user_code(user_code)
        self._device_grants[user_code] = None

    # Keys and tokens.

    @property
    def kid(self) -> str:
        """The `kid` of the current signing key."""
        return str(self._keys[-1].kid)

    def rotate_key(self) -> str:
        """Sign with a new key from now on; the old keys stay in the JWKS. Returns the new kid."""
        self._keys.append(_new_key())
        return self.kid

    def retire_old_keys(self) -> None:
        """Unpublish every key but the current one."""
        del self._keys[:-1]

    def jwks(self) -> list[dict[str, Any]]:
        """The published public keys, as served at `/jwks`."""
        return [dict(key.as_dict(private=False)) for key in self._keys]

    def public_jwk(self) -> dict[str, Any]:
        """The current signing key's public JWK."""
        return dict(self._keys[-1].as_dict(private=False))

    def public_pem(self) -> bytes:
        """The current signing key's public key as PEM, the bytes of the HS256 confusion attack."""
        return self._keys[-1].as_pem(private=False)

    def mint(
        self,
        claims: Mapping[str, Any],
        *,
        alg: str = "RS256",
        key: Key | bytes | None = None,
        kid: str | None = None,
    ) -> str:
        """Sign `claims` exactly as given, with the current key unless told otherwise.

        The header's `kid` is the current kid unless `kid` is given (`""` leaves it out).
        `alg="none"` gives an unsigned token; an `HS*` alg signs with `key` as raw bytes, by
        default the public PEM (the RS256/HS256 key-confusion attack); other algs sign with a
        joserfc `key` (a foreign key keeps the provider's kid unless told otherwise).
        """
        header = {"typ": "JWT", "alg": alg, "kid": self.kid if kid is None else kid}
        if not header["kid"]:
            del header["kid"]
        if alg == "none" or (alg.startswith("HS") and not isinstance(key, Key)):
            signing_input = f"{_b64(header)}.{_b64(dict(claims))}"
            if alg == "none":
                return f"{signing_input}."
            digest = getattr(hashlib, f"sha{alg[2:]}")
            secret = key if isinstance(key, bytes) else self.public_pem()
            mac = hmac.new(secret, signing_input.encode(), digest).digest()
            return f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
        if isinstance(key, bytes):
            raise ValueError(f"raw key bytes sign only HS* tokens, not alg={alg!r}")
        return jwt.encode(header, dict(claims), key or self._keys[-1], algorithms=[alg])

    def user_claims(self, user: User, scope: str) -> dict[str, Any]:
        """The identity claims of `user` that `scope` allows (email only with `email`)."""
        claims: dict[str, Any] = {"sub": user.sub}
        if "email" in scope_to_list(scope):
            claims.update(email=user.email, email_verified=user.email_verified)
        return claims

    def generate_token(
        self,
        grant_type: str,
        client: Client,
        user: User | None = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        """Authlib's token generator: a JWT access token, plus a random refresh token."""
        assert user is not None, "every grant here has a resource owner"
        scope = client.get_allowed_scope(scope)
        now, lifetime = int(time.time()), expires_in or self.token_lifetime
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "iat": now,
            "exp": now + lifetime,
            "scope": scope,
            "client_id": client.client_id,
            "jti": secrets.token_hex(8),
            **self.user_claims(user, scope),
        }
        access_token = jwt.encode(
            {"typ": "at+jwt", "alg": "RS256", "kid": self.kid},
            claims,
            self._keys[-1],
            algorithms=["RS256"],
        )
        token = {
            "token_type": "Bearer",
            "access_token": access_token,
            "expires_in": lifetime,
            "scope": scope,
        }
        if include_refresh_token:
            token["refresh_token"] = secrets.token_urlsafe(32)
        return token

    def save_token(self, token: dict[str, Any], req: Any) -> None:
        """Authlib's token store: remember refresh tokens."""
        if refresh_token := token.get("refresh_token"):
            self._refresh_tokens[refresh_token] = RefreshToken(
                refresh_token, req.client.client_id, req.user.sub, token["scope"]
            )

    # Endpoints.

    def _discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "device_authorization_endpoint": f"{self.issuer}/device_authorization",
            "revocation_endpoint": f"{self.issuer}/revoke",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "grant_types_supported": GRANT_TYPES,
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
            "scopes_supported": SCOPES,
            "claims_supported": CLAIMS,
        }

    def _jwks(self) -> dict[str, Any]:
        return {"keys": self.jwks()}

    def _token(self) -> Response:
        return self._server.create_token_response()  # type: ignore[no-any-return]

    def _revoke(self) -> Response:
        name = RevocationEndpoint.ENDPOINT_NAME
        return self._server.create_endpoint_response(name)  # type: ignore[no-any-return]

    def _device_authorization(self) -> Response:
        name = DeviceAuthorizationEndpoint.ENDPOINT_NAME
        return self._server.create_endpoint_response(name)  # type: ignore[no-any-return]

    def _authorize(self) -> Response:
        """Log in as `login_hint` or the current user at once (no form), then redirect."""
        hint = request.args.get("login_hint")
        user = self.users.get(hint) if hint else self.current_user
        try:
            grant = self._server.get_consent_grant(end_user=user)
        except OAuth2Error as error:
            return self._server.handle_error_response(None, error)  # type: ignore[no-any-return]
        return self._server.create_authorization_response(  # type: ignore[no-any-return]
            grant=grant, grant_user=user
        )

    def _device_page(self) -> Response:
        """The verification URI: approves `user_code` as the logged-in user, like a click."""
        user_code = request.args.get("user_code", "")
        if self.current_user is None or user_code not in self._pending_user_codes():
            return Response("no logged-in user or unknown user_code\n", status=400)
        self.approve_device(user_code, self.current_user.sub)
        return Response("device approved\n")

    def _user(self, sub: str) -> User:
        if sub not in self.users:
            raise KeyError(f"unknown user {sub!r}: register it with add_user() first")
        return self.users[sub]

    def _pending_user_codes(self) -> set[str]:
        return {str(credential["user_code"]) for credential in self._devices.values()}

    def _pending_user_code(self, user_code: str) -> None:
        if user_code not in self._pending_user_codes():
            raise KeyError(f"no device authorization has user_code {user_code!r}")


class _Server(AuthorizationServer):
    def __init__(self, provider: IdentityProvider) -> None:
        super().__init__(provider.app, provider.clients.get, provider.save_token)
        self.provider = provider
        self.register_token_generator("default", provider.generate_token)
        id_token = _IdToken(provider)
        self.register_grant(_AuthorizationCodeGrant, [_S256Required(), id_token])
        self.register_grant(_RefreshTokenGrant, [id_token])
        self.register_grant(_DeviceCodeGrant, [id_token])
        self.register_endpoint(_DeviceAuthorizationEndpoint(self))
        self.register_endpoint(_RevocationEndpoint(self))


class _IdToken(OpenIDCode):
    """Adds an id_token to every token response whose scope has `openid`."""

    def __init__(self, provider: IdentityProvider) -> None:
        super().__init__(require_nonce=False)
        self.provider = provider

    def resolve_client_private_key(self, client: Client) -> RSAKey:
        return self.provider._keys[-1]

    def get_encode_header(self, client: Client) -> dict[str, str]:
        return {"alg": "RS256", "kid": self.provider.kid}

    def get_client_claims(self, client: Client) -> dict[str, Any]:
        now = int(time.time())
        return {
            "iss": self.provider.issuer,
            "aud": client.client_id,
            "iat": now,
            "exp": now + self.provider.token_lifetime,
        }

    def exists_nonce(self, nonce: str, req: Any) -> bool:
        return (req.payload.client_id, nonce) in self.provider._nonces

    def generate_user_info(self, user: User, scope: str) -> dict[str, Any]:
        return self.provider.user_claims(user, scope)


class _S256Required(CodeChallenge):
    """PKCE with S256 only, required on every authorization request."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ("S256",)
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge") or data.get("code_challenge_method") != "S256":
            raise InvalidRequestError(
                "PKCE required: code_challenge with method S256", redirect_uri=redirect_uri
            )
        super().validate_code_challenge(grant, redirect_uri)


class _AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS
    server: _Server

    def save_authorization_code(self, code: str, req: Any) -> None:
        data, provider = req.payload.data, self.server.provider
        if nonce := data.get("nonce"):
            provider._nonces.add((req.client.client_id, nonce))
        provider._codes[code] = AuthorizationCode(
            code,
            req.client.client_id,
            req.user.sub,
            req.payload.redirect_uri,
            req.scope,
            nonce,
            data.get("code_challenge"),
            data.get("code_challenge_method"),
        )

    def query_authorization_code(self, code: str, client: Client) -> AuthorizationCode | None:
        found = self.server.provider._codes.get(code)
        if found is None or found.client_id != client.client_id:
            return None
        return found if time.time() - found.auth_time < 600 else None

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        self.server.provider._codes.pop(authorization_code.code, None)

    def authenticate_user(self, authorization_code: AuthorizationCode) -> User | None:
        return self.server.provider.users.get(authorization_code.sub)


class _RefreshTokenGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True
    server: _Server

    def authenticate_refresh_token(self, refresh_token: str) -> RefreshToken | None:
        found = self.server.provider._refresh_tokens.get(refresh_token)
        return found if found is not None and not found.revoked else None

    def authenticate_user(self, refresh_token: RefreshToken) -> User | None:
        return self.server.provider.users.get(refresh_token.sub)

    def revoke_old_credential(self, refresh_token: RefreshToken) -> None:
        refresh_token.revoked = True


class _RevocationEndpoint(RevocationEndpoint):
    """Revokes refresh tokens (RFC 7009); access tokens are JWTs that run out on their own."""

    CLIENT_AUTH_METHODS = CLIENT_AUTH_METHODS
    server: _Server

    def query_token(self, token_string: str, token_type_hint: str | None) -> RefreshToken | None:
        return self.server.provider._refresh_tokens.get(token_string)

    def revoke_token(self, token: RefreshToken, request: Any) -> None:
        token.revoked = True


class _DeviceCodeGrant(DeviceCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS
    server: _Server

    def create_token_response(self) -> Any:
        """Issue the tokens once: the device code is spent."""
        response = super().create_token_response()
        self.server.provider._devices.pop(self.request.credential["device_code"], None)
        return response

    def query_device_credential(self, device_code: str) -> DeviceCredentialDict | None:
        return self.server.provider._devices.get(device_code)

    def query_user_grant(self, user_code: str) -> tuple[User | None, bool] | None:
        grants = self.server.provider._device_grants
        return (grants[user_code], grants[user_code] is not None) if user_code in grants else None

    def should_slow_down(self, credential: DeviceCredentialDict) -> bool:
        """Polling faster than the advertised interval earns `slow_down`."""
        polls, now = self.server.provider._device_polls, time.monotonic()
        last = polls.get(credential["device_code"], float("-inf"))
        polls[credential["device_code"]] = now
        return now - last < self.server.provider.device_interval


class _DeviceAuthorizationEndpoint(DeviceAuthorizationEndpoint):
    server: _Server

    def __init__(self, server: _Server) -> None:
        super().__init__(server)
        self.INTERVAL = server.provider.device_interval

    def get_verification_uri(self) -> str:
        return f"{self.server.provider.issuer}/device"

    def save_device_credential(self, client_id: str, scope: str, data: dict[str, Any]) -> None:
        expires_at = int(time.time()) + self.EXPIRES_IN
        self.server.provider._devices[data["device_code"]] = DeviceCredentialDict(
            client_id=client_id, scope=scope, expires_at=expires_at, **data
        )


def _new_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"use": "sig", "alg": "RS256"}, auto_kid=True)


def _b64(part: dict[str, Any]) -> str:
    raw = json.dumps(part, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
