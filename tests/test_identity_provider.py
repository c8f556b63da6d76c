"""The test OpenID Connect provider, end to end over HTTP with plain httpx and joserfc."""

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.errors import BadSignatureError, JoseError
from joserfc.jwk import KeySet, RSAKey
from joserfc.jwt import JWTClaimsRegistry

from tests.identity_provider import IdentityProvider

CLIENT = "stardag-cli"
AUDIENCE = "stardag-registry"
REDIRECT = "http://127.0.0.1/callback"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


@pytest.fixture
def idp() -> Iterator[IdentityProvider]:
    with IdentityProvider(audience=AUDIENCE, device_interval=0) as provider:
        provider.add_user("alice", "alice@example.com")
        provider.add_user("bob", "bob@example.com", email_verified=False)
        provider.add_client(CLIENT, [REDIRECT])
        provider.login_as("alice")
        yield provider


@pytest.fixture
def rp(idp: IdentityProvider, http: httpx.Client) -> "RelyingParty":
    return RelyingParty(idp, http)


def test_discovery_document(rp: "RelyingParty", idp: IdentityProvider) -> None:
    doc = rp.get("/.well-known/openid-configuration").json()
    assert doc["issuer"] == idp.issuer
    assert doc["jwks_uri"] == f"{idp.issuer}/jwks"
    assert doc["authorization_endpoint"] == f"{idp.issuer}/authorize"
    assert doc["token_endpoint"] == f"{idp.issuer}/token"
    assert doc["device_authorization_endpoint"] == f"{idp.issuer}/device_authorization"
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]
    assert DEVICE_GRANT in doc["grant_types_supported"]


def test_code_flow_with_pkce_gives_tokens_that_verify_against_the_jwks(
    rp: "RelyingParty", idp: IdentityProvider
) -> None:
    verifier, nonce = secrets.token_urlsafe(48), secrets.token_urlsafe(16)
    tokens = rp.exchange(rp.authorize(verifier, nonce=nonce), verifier).json()

    id_token = rp.verify(tokens["id_token"], aud=CLIENT, nonce=nonce)
    assert id_token.header["kid"] == idp.kid
    assert id_token.claims["sub"] == "alice"
    assert id_token.claims["email"] == "alice@example.com"
    assert id_token.claims["email_verified"] is True
    access = rp.verify(tokens["access_token"], aud=AUDIENCE)
    assert access.header["typ"] == "at+jwt"
    assert access.claims["scope"] == "openid email"
    assert (access.claims["sub"], access.claims["email_verified"]) == ("alice", True)
    assert tokens["refresh_token"]


def test_a_confidential_client_authenticates_with_its_secret(
    rp: "RelyingParty", idp: IdentityProvider
) -> None:
    secret = idp.add_client("web", [REDIRECT], public=False).client_secret
    assert secret is not None
    verifier = secrets.token_urlsafe(48)
    code = rp.authorize(verifier, client_id="web")
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    form |= {"code_verifier": verifier, "client_id": "web"}
    assert rp.post("/token", form).json()["error"] == "invalid_client"
    tokens = rp.post("/token", form | {"client_secret": secret}).json()
    assert rp.verify(tokens["id_token"], aud="web").claims["sub"] == "alice"


def test_login_hint_chooses_the_user(rp: "RelyingParty") -> None:
    verifier = secrets.token_urlsafe(48)
    code = rp.authorize(verifier, login_hint="bob")
    id_token = rp.verify(rp.exchange(code, verifier).json()["id_token"], aud=CLIENT)
    assert (id_token.claims["sub"], id_token.claims["email_verified"]) == ("bob", False)


def test_a_wrong_code_verifier_is_refused_and_the_code_is_single_use(rp: "RelyingParty") -> None:
    verifier = secrets.token_urlsafe(48)
    code = rp.authorize(verifier)
    refused = rp.exchange(code, secrets.token_urlsafe(48))
    assert (refused.status_code, refused.json()["error"]) == (400, "invalid_grant")
    assert rp.exchange(code, verifier).status_code == 200
    assert rp.exchange(code, verifier).json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    "pkce", [{}, {"code_challenge": "x" * 43, "code_challenge_method": "plain"}]
)
def test_authorization_without_s256_pkce_is_refused(
    rp: "RelyingParty", pkce: dict[str, str]
) -> None:
    params = {"response_type": "code", "client_id": CLIENT, "redirect_uri": REDIRECT, **pkce}
    location = rp.get("/authorize", params=params).headers["location"]
    assert query(location)["error"] == "invalid_request"


def test_loopback_redirects_match_on_any_port_and_others_are_refused(rp: "RelyingParty") -> None:
    verifier = secrets.token_urlsafe(48)
    redirect = "http://127.0.0.1:54321/callback"
    code = rp.authorize(verifier, redirect_uri=redirect)
    assert rp.exchange(code, verifier, redirect_uri=redirect).status_code == 200

    params = pkce_params(verifier, redirect_uri="http://evil.example/callback")
    refused = rp.get("/authorize", params=params)
    assert refused.status_code == 400
    assert "location" not in refused.headers


def test_no_logged_in_user_denies_access(rp: "RelyingParty", idp: IdentityProvider) -> None:
    idp.login_as(None)
    response = rp.get("/authorize", params=pkce_params(secrets.token_urlsafe(48)))
    assert query(response.headers["location"])["error"] == "access_denied"


def test_refresh_gives_a_new_access_token_and_spends_the_refresh_token(
    rp: "RelyingParty",
) -> None:
    verifier = secrets.token_urlsafe(48)
    first = rp.exchange(rp.authorize(verifier), verifier).json()
    refreshed = rp.refresh(first["refresh_token"]).json()
    assert refreshed["access_token"] != first["access_token"]
    assert rp.verify(refreshed["access_token"], aud=AUDIENCE).claims["sub"] == "alice"
    assert rp.verify(refreshed["id_token"], aud=CLIENT).claims["sub"] == "alice"
    assert refreshed["refresh_token"] != first["refresh_token"]
    assert rp.refresh(first["refresh_token"]).json()["error"] == "invalid_grant"


def test_device_flow_is_pending_until_approved(rp: "RelyingParty", idp: IdentityProvider) -> None:
    device = rp.start_device_flow()
    assert device["verification_uri"] == f"{idp.issuer}/device"
    assert rp.poll(device).json()["error"] == "authorization_pending"

    idp.approve_device(device["user_code"], "bob")
    tokens = rp.poll(device).json()
    assert rp.verify(tokens["access_token"], aud=AUDIENCE).claims["sub"] == "bob"
    assert rp.verify(tokens["id_token"], aud=CLIENT).claims["email"] == "bob@example.com"
    assert rp.poll(device).json()["error"] == "invalid_request"


def test_device_flow_approved_in_a_browser_or_denied(
    rp: "RelyingParty", idp: IdentityProvider
) -> None:
    device = rp.start_device_flow()
    assert rp.http.get(device["verification_uri_complete"]).status_code == 200
    assert rp.verify(rp.poll(device).json()["id_token"], aud=CLIENT).claims["sub"] == "alice"

    denied = rp.start_device_flow()
    idp.deny_device(denied["user_code"])
    assert rp.poll(denied).json()["error"] == "access_denied"


def test_polling_faster_than_the_interval_slows_down(http: httpx.Client) -> None:
    with IdentityProvider(device_interval=5) as slow:
        slow.add_client(CLIENT, [REDIRECT])
        rp = RelyingParty(slow, http)
        device = rp.start_device_flow()
        assert device["interval"] == 5
        assert rp.poll(device).json()["error"] == "authorization_pending"
        assert rp.poll(device).json()["error"] == "slow_down"


def test_key_rotation_keeps_old_tokens_valid_until_old_keys_are_retired(
    rp: "RelyingParty", idp: IdentityProvider
) -> None:
    claims = {"iss": idp.issuer, "aud": AUDIENCE, "sub": "alice", "exp": in_an_hour()}
    old_kid, before = idp.kid, idp.mint(claims)
    new_kid = idp.rotate_key()
    after = idp.mint(claims)
    assert new_kid != old_kid
    assert {key["kid"] for key in rp.jwks()} == {old_kid, new_kid}
    assert rp.verify(before, aud=AUDIENCE).header["kid"] == old_kid
    assert rp.verify(after, aud=AUDIENCE).header["kid"] == new_kid

    idp.retire_old_keys()
    assert [key["kid"] for key in rp.jwks()] == [new_kid]
    with pytest.raises(JoseError):
        rp.verify(before, aud=AUDIENCE)


def test_mint_makes_the_attack_tokens(rp: "RelyingParty", idp: IdentityProvider) -> None:
    claims = {"iss": idp.issuer, "aud": AUDIENCE, "sub": "mallory", "exp": in_an_hour()}

    unsigned = idp.mint(claims, alg="none")
    header, payload, signature = unsigned.split(".")
    assert decode_part(header) == {"typ": "JWT", "alg": "none", "kid": idp.kid}
    assert (decode_part(payload), signature) == (claims, "")

    confused = idp.mint(claims, alg="HS256")
    signing_input, _, signature = confused.rpartition(".")
    assert decode_part(signing_input.split(".")[0])["alg"] == "HS256"
    pem = RSAKey.import_key(idp.public_jwk()).as_pem()
    assert pem == idp.public_pem()
    expected = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    assert signature == b64(expected)

    foreign = idp.mint(claims, key=RSAKey.generate_key(2048))
    for token in (unsigned, confused):
        with pytest.raises(JoseError):
            rp.verify(token, aud=AUDIENCE)
    with pytest.raises(BadSignatureError):
        rp.verify(foreign, aud=AUDIENCE)
    assert rp.verify(idp.mint(claims), aud=AUDIENCE).claims["sub"] == "mallory"


class RelyingParty:
    """A client of the provider doing each step by hand, as the CLI and the registry will."""

    def __init__(self, idp: IdentityProvider, http: httpx.Client) -> None:
        self.idp, self.http = idp, http

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.get(f"{self.idp.issuer}{path}", **kwargs)

    def post(self, path: str, data: dict[str, str]) -> httpx.Response:
        return self.http.post(f"{self.idp.issuer}{path}", data=data)

    def authorize(self, verifier: str, **extra: str) -> str:
        """The browser leg: /authorize redirects to the client with a code."""
        response = self.get("/authorize", params=pkce_params(verifier, **extra))
        assert response.status_code == 302, response.text
        params = query(response.headers["location"])
        assert params["state"] == "s"
        return params["code"]

    def exchange(self, code: str, verifier: str, redirect_uri: str = REDIRECT) -> httpx.Response:
        form = {"grant_type": "authorization_code", "client_id": CLIENT, "code": code}
        form |= {"redirect_uri": redirect_uri, "code_verifier": verifier}
        return self.post("/token", form)

    def refresh(self, refresh_token: str) -> httpx.Response:
        form = {"grant_type": "refresh_token", "client_id": CLIENT}
        return self.post("/token", form | {"refresh_token": refresh_token})

    def start_device_flow(self) -> dict[str, Any]:
        response = self.post(
            "/device_authorization", {"client_id": CLIENT, "scope": "openid email"}
        )
        assert response.status_code == 200, response.text
        return dict(response.json())

    def poll(self, device: dict[str, Any]) -> httpx.Response:
        form = {"grant_type": DEVICE_GRANT, "client_id": CLIENT}
        return self.post("/token", form | {"device_code": device["device_code"]})

    def jwks(self) -> list[dict[str, Any]]:
        return list(self.get("/jwks").json()["keys"])

    def verify(self, token: str, *, aud: str, nonce: str | None = None) -> jwt.Token:
        """Verify against the published JWKS, then check the claims."""
        keys = KeySet.import_key_set({"keys": self.jwks()})
        decoded = jwt.decode(token, keys, algorithms=["RS256"])
        JWTClaimsRegistry(
            iss={"essential": True, "value": self.idp.issuer},
            aud={"essential": True, "value": aud},
            exp={"essential": True},
            sub={"essential": True},
        ).validate(decoded.claims)
        assert nonce is None or decoded.claims["nonce"] == nonce
        return decoded


def pkce_params(verifier: str, **extra: str) -> dict[str, str]:
    challenge = b64(hashlib.sha256(verifier.encode()).digest())
    return {
        "response_type": "code",
        "client_id": CLIENT,
        "redirect_uri": REDIRECT,
        "scope": "openid email",
        "state": "s",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }


def query(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_part(part: str) -> dict[str, Any]:
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


def in_an_hour() -> int:
    return int(time.time()) + 3600
