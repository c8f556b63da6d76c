"""Verification of an external OpenID Connect provider's tokens against its published keys.

The provider's discovery document names its key set (JWKS), which is cached `cache_seconds`.
A token signed with a key not in the cache (the provider rotated its keys) makes the verifier
fetch the set again, at most once per `min_refresh_seconds`: tokens with made-up key ids cannot
make the registry hammer the provider.
"""

import asyncio
import json
import math
import time
from dataclasses import dataclass
from typing import Any

import httpx
from joserfc import jws
from joserfc.errors import (
    ExpiredTokenError,
    InvalidClaimError,
    InvalidKeyIdError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import KeySet
from joserfc.jws import CompactSignature, JWSRegistry
from joserfc.jwt import JWTClaimsRegistry

from stardag_graphql.errors import CredentialError

ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)
CREDENTIAL = "the identity provider's token"
LOG_IN = "log in again with `stardag auth login`"
HTTP_TIMEOUT = httpx.Timeout(10.0)


@dataclass(frozen=True)
class ProviderIdentity:
    """The person a valid provider token speaks for, as the provider vouches."""

    issuer: str
    subject: str
    email: str
    email_verified: bool
    name: str


class ProviderVerifier:
    """Checks tokens that the OpenID Connect provider `issuer` issued for `audience`.

    Pass `http` to share a client (the caller then closes it); otherwise the verifier makes
    its own, closed by `aclose()`.
    """

    def __init__(
        self,
        issuer: str,
        audience: str,
        *,
        http: httpx.AsyncClient | None = None,
        cache_seconds: float = 300.0,
        min_refresh_seconds: float = 30.0,
        leeway_seconds: int = 30,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.cache_seconds = cache_seconds
        self.min_refresh_seconds = min_refresh_seconds
        self._http = http or httpx.AsyncClient(timeout=HTTP_TIMEOUT)
        self._owns_http = http is None
        self._discovery_url = f"{issuer.rstrip('/')}/.well-known/openid-configuration"
        self._jwks_uri: str | None = None
        self._keys: KeySet | None = None
        self._kids: frozenset[str] = frozenset()
        self._fetched_at = -math.inf  # monotonic time of the last fetch that succeeded
        self._refetched_at = -math.inf  # and of the last one for an unknown kid
        self._attempts = 0  # completed attempts: the waiters of one share its outcome
        self._failure: str | None = None  # the last attempt's error message
        self._lock = asyncio.Lock()
        # Providers add header fields of their own; `crit` is still enforced.
        self._signatures = JWSRegistry(algorithms=ALGORITHMS, strict_check_header=False)
        self._claims = JWTClaimsRegistry(
            leeway=leeway_seconds,
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": audience},
            exp={"essential": True},
            sub={"essential": True},
        )

    def __repr__(self) -> str:
        return f"<ProviderVerifier {self.issuer} audience={self.audience!r}>"

    async def verify(self, token: str) -> ProviderIdentity:
        """The identity in `token`, once its signature and claims check out."""
        signed = self._parse(token)
        keys = await self._key_set(signed.headers().get("kid"))
        try:
            valid = jws.validate_compact(signed, keys, registry=self._signatures)
        except InvalidKeyIdError as error:
            raise CredentialError(
                f"{CREDENTIAL} is signed with a key that the provider at {self.issuer} does not "
                f"publish: {LOG_IN}"
            ) from error
        except JoseError as error:
            raise CredentialError(f"{CREDENTIAL} has an invalid signature: {LOG_IN}") from error
        if not valid:
            raise CredentialError(f"{CREDENTIAL} has an invalid signature: {LOG_IN}")
        return self._identity(_payload(signed))

    async def aclose(self) -> None:
        """Close the HTTP client, if the verifier made it."""
        if self._owns_http:
            await self._http.aclose()

    def _parse(self, token: str) -> CompactSignature:
        try:
            signed = jws.extract_compact(token.encode(), registry=self._signatures)
            self._signatures.check_header(signed.headers())
        except (JoseError, ValueError) as error:
            raise CredentialError(f"{CREDENTIAL} is not a well-formed JWT: {LOG_IN}") from error
        alg = signed.headers()["alg"]
        if alg not in ALGORITHMS:
            raise CredentialError(
                f"{CREDENTIAL} is signed with {_shorten(alg)}, not with one of the asymmetric "
                f"algorithms the registry accepts ({', '.join(ALGORITHMS)}): {LOG_IN}"
            )
        return signed

    def _identity(self, claims: dict[str, Any]) -> ProviderIdentity:
        try:
            self._claims.validate(claims)
        except ExpiredTokenError as error:
            raise CredentialError(f"{CREDENTIAL} has expired: {LOG_IN}") from error
        except MissingClaimError as error:
            missing = ", ".join(f"`{claim}`" for claim in error.claim.split(","))
            raise CredentialError(f"{CREDENTIAL} lacks the claim(s) {missing}: {LOG_IN}") from error
        except InvalidClaimError as error:
            raise CredentialError(f"{CREDENTIAL} {self._invalid(error.claim, claims)}") from error
        email = claims.get("email")
        if not isinstance(email, str) or not email:
            raise CredentialError(
                f"{CREDENTIAL} carries no email address: log in again, requesting the `email` "
                "scope (`stardag auth login` does)"
            )
        # Some providers send the boolean as a string.
        verified = claims.get("email_verified") in (True, "true")
        name = claims.get("name")
        return ProviderIdentity(
            self.issuer, claims["sub"], email, verified, name if isinstance(name, str) else ""
        )

    def _invalid(self, claim: str, claims: dict[str, Any]) -> str:
        """What is wrong with the token's `claim`, and what to do."""
        if claim == "iss":
            return (
                f"was issued by {_shorten(claims['iss'])}, not by {self.issuer}: log in at "
                f"{self.issuer} with `stardag auth login`"
            )
        if claim == "aud":
            return (
                f"is meant for {_shorten(claims['aud'])}, not for this registry "
                f"({self.audience!r}): log in with the client configured for this registry"
            )
        if claim in ("nbf", "iat"):
            return (
                f"is not valid yet (its `{claim}` lies in the future): check this machine's "
                f"clock, then {LOG_IN}"
            )
        return f"has an invalid `{claim}` claim: {LOG_IN}"

    async def _key_set(self, kid: str | None) -> KeySet:
        """The provider's keys, fetched again when stale or when they lack `kid` (throttled)."""
        if not self._must_fetch(kid):
            assert self._keys is not None
            return self._keys
        seen = self._attempts
        async with self._lock:
            if self._attempts == seen and self._must_fetch(kid):
                await self._fetch(for_unknown_kid=not self._stale())
            if self._failure is not None:
                raise CredentialError(self._failure)
            assert self._keys is not None
            return self._keys

    def _stale(self) -> bool:
        return self._keys is None or time.monotonic() - self._fetched_at >= self.cache_seconds

    def _must_fetch(self, kid: str | None) -> bool:
        return self._stale() or (
            kid is not None
            and kid not in self._kids
            and time.monotonic() - self._refetched_at >= self.min_refresh_seconds
        )

    async def _fetch(self, *, for_unknown_kid: bool) -> None:
        """Fetch the key set (and, the first time, the discovery document); never raises."""
        started = time.monotonic()
        if for_unknown_kid:
            self._refetched_at = started
        try:
            keys = await self._fetch_keys()
        except CredentialError as error:
            self._failure = str(error)
        else:
            self._keys, self._kids = keys, frozenset(str(key.kid) for key in keys)
            self._fetched_at, self._failure = started, None
        self._attempts += 1

    async def _fetch_keys(self) -> KeySet:
        if self._jwks_uri is None:
            discovery = await self._get_json(self._discovery_url)
            if discovery.get("issuer") != self.issuer:
                raise CredentialError(
                    f"the discovery document at {self._discovery_url} names the issuer "
                    f"{_shorten(discovery.get('issuer'))}, not {self.issuer!r}: configure the "
                    "registry with the provider's exact issuer"
                )
            jwks_uri = discovery.get("jwks_uri")
            if not isinstance(jwks_uri, str):
                raise CredentialError(
                    f"the discovery document at {self._discovery_url} has no `jwks_uri`: "
                    "the provider does not publish its keys"
                )
            self._jwks_uri = jwks_uri
        jwks = await self._get_json(self._jwks_uri)
        try:
            return KeySet.import_key_set({"keys": jwks["keys"]})
        except (JoseError, ValueError, TypeError, KeyError) as error:
            raise CredentialError(
                f"the identity provider at {self.issuer} publishes no keys the registry can "
                f"read at {self._jwks_uri}: ask the registry's operator to check the provider"
            ) from error

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            response = await self._http.get(url)
        except (httpx.HTTPError, httpx.InvalidURL) as error:
            raise CredentialError(
                f"the identity provider at {self.issuer} could not be reached "
                f"({type(error).__name__}): try again later"
            ) from error
        if response.status_code != httpx.codes.OK:
            raise CredentialError(
                f"the identity provider at {self.issuer} answered {response.status_code} "
                f"for {url}: try again later"
            )
        try:
            document = response.json()
        except ValueError as error:
            raise CredentialError(
                f"the identity provider at {self.issuer} served no JSON at {url}: ask the "
                "registry's operator to check the provider's address"
            ) from error
        if not isinstance(document, dict):
            raise CredentialError(
                f"the identity provider at {self.issuer} served no JSON object at {url}: ask "
                "the registry's operator to check the provider's address"
            )
        return document


def _payload(signed: CompactSignature) -> dict[str, Any]:
    try:
        claims = json.loads(signed.payload or b"")
    except ValueError as error:
        raise CredentialError(f"{CREDENTIAL} is not a well-formed JWT: {LOG_IN}") from error
    if not isinstance(claims, dict):
        raise CredentialError(f"{CREDENTIAL} is not a well-formed JWT: {LOG_IN}")
    return claims


def _shorten(value: object, limit: int = 80) -> str:
    """`value` quoted, cut to `limit` characters: claims and headers come from the caller."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."
