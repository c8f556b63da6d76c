"""The registry's own tokens: short-lived, for one user in one organization, signed ES256.

One P-256 key, kept in a PEM file that the server creates on first start (mode 0600), signs
them. Every request's token is checked against the public half, parsed once, so a check costs
one signature verification and no I/O.
"""

import os
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    InvalidKeyIdError,
    JoseError,
    MissingAlgorithmError,
    MissingClaimError,
    UnsupportedAlgorithmError,
)
from joserfc.jwk import ECKey, GuestProtocol
from joserfc.jws import JWSRegistry
from joserfc.jwt import JWTClaimsRegistry

from stardag_graphql.errors import CredentialError, ServerConfigError

AUDIENCE = "stardag-registry"
ALGORITHM = "ES256"
CURVE = "P-256"
LEEWAY_SECONDS = 5
CREDENTIAL = "the registry token"
SIGN_IN = "sign in again with `stardag auth login`"


@dataclass(frozen=True)
class RegistryClaims:
    """Whom a valid registry token speaks for, in which organization, and until when (UTC)."""

    user_id: uuid.UUID
    organization_id: uuid.UUID
    expires_at: datetime


class TokenSigner:
    """Mints and verifies registry tokens with one private P-256 key; `issuer` names the registry.

    ```python
    signer = TokenSigner.load_or_create(Path("signing-key.pem"), "https://registry.example")
    token, expires_at = signer.mint(user_id, organization_id, timedelta(minutes=15))
    assert signer.verify(token).user_id == user_id
    ```
    """

    def __init__(self, key: ECKey, issuer: str) -> None:
        if not isinstance(key, ECKey) or not key.is_private or key.curve_name != CURVE:
            raise ValueError(f"the token signing key must be a private EC key on {CURVE}")
        self.issuer = issuer
        self.kid = key.thumbprint()
        parameters = {"kid": self.kid, "use": "sig", "alg": ALGORITHM}
        self._private = ECKey.import_key({**key.as_dict(private=True), **parameters})
        self._public = ECKey.import_key({**key.as_dict(private=False), **parameters})
        self._signatures = JWSRegistry(algorithms=[ALGORITHM])
        self._claims = JWTClaimsRegistry(
            leeway=LEEWAY_SECONDS,
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": AUDIENCE},
            exp={"essential": True},
            sub={"essential": True},
            org={"essential": True},
        )

    @classmethod
    def load_or_create(cls, path: Path, issuer: str) -> "TokenSigner":
        """The signer whose key is the PEM file `path`, which is created (mode 0600) if missing."""
        try:
            pem = path.read_bytes()
        except FileNotFoundError:
            pem = _create_key_file(path)
        except OSError as error:
            raise ServerConfigError(
                f"cannot read the token signing key {path}: {error.strerror}; make it readable "
                "by the server"
            ) from error
        try:
            return cls(ECKey.import_key(pem), issuer)
        except (JoseError, ValueError, TypeError) as error:
            raise ServerConfigError(
                f"the token signing key {path} is not an EC {CURVE} private key in PEM: restore "
                "it, or delete it to have the server create a new one (which signs everyone out)"
            ) from error

    def __repr__(self) -> str:
        return f"<TokenSigner issuer={self.issuer!r} kid={self.kid!r}>"

    def mint(
        self, user_id: uuid.UUID, organization_id: uuid.UUID, ttl: timedelta
    ) -> tuple[str, datetime]:
        """A token for `user_id` in `organization_id` valid for `ttl`, and when it expires."""
        if ttl < timedelta(seconds=1):
            raise ValueError(f"ttl must be at least one second, got {ttl}")
        now = int(time.time())
        expires = now + int(ttl.total_seconds())
        claims = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": str(user_id),
            "org": str(organization_id),
            "iat": now,
            "exp": expires,
            "jti": secrets.token_urlsafe(16),
        }
        header = {"alg": ALGORITHM, "kid": self.kid}
        token = jwt.encode(header, claims, self._private, registry=self._signatures)
        return token, datetime.fromtimestamp(expires, UTC)

    def verify(self, token: str) -> RegistryClaims:
        """The claims of `token`, if this signer issued it and it has not expired."""
        try:
            claims = jwt.decode(token, self._key_for, registry=self._signatures).claims
        except (
            BadSignatureError,
            InvalidKeyIdError,
            MissingAlgorithmError,
            UnsupportedAlgorithmError,
        ) as error:
            raise CredentialError(
                f"{CREDENTIAL} was not signed by this registry: {SIGN_IN}"
            ) from error
        except (JoseError, ValueError) as error:
            raise CredentialError(f"{CREDENTIAL} is not a well-formed JWT: {SIGN_IN}") from error
        try:
            self._claims.validate(claims)
        except ExpiredTokenError as error:
            raise CredentialError(f"{CREDENTIAL} has expired: refresh it, or {SIGN_IN}") from error
        except (InvalidClaimError, MissingClaimError) as error:
            raise CredentialError(f"{CREDENTIAL} {self._invalid(error.claim)}") from error
        user_id, organization_id = _uuid(claims["sub"]), _uuid(claims["org"])
        if user_id is None or organization_id is None:
            raise CredentialError(f"{CREDENTIAL} names no valid user or organization: {SIGN_IN}")
        return RegistryClaims(user_id, organization_id, datetime.fromtimestamp(claims["exp"], UTC))

    def jwks(self) -> dict[str, Any]:
        """The public key set, as served to anyone who checks the registry's tokens."""
        return {"keys": [dict(self._public.as_dict(private=False))]}

    def _key_for(self, signed: GuestProtocol) -> ECKey:
        """Our public key, for a token that names it: no `kid`, or another, is refused."""
        if signed.headers().get("kid") != self.kid:
            raise InvalidKeyIdError("the token names another key")
        return self._public

    def _invalid(self, claim: str) -> str:
        """What is wrong with the token's `claim`, and what to do."""
        if claim == "iss":
            return f"was issued by another registry, not by {self.issuer}: {SIGN_IN}"
        if claim == "aud":
            return f"is not meant for the registry (`aud` is not {AUDIENCE!r}): {SIGN_IN}"
        if claim in ("nbf", "iat"):
            return f"is not valid yet (its `{claim}` lies in the future): {SIGN_IN}"
        return f"has a missing or invalid `{claim}` claim: {SIGN_IN}"


def _uuid(value: object) -> uuid.UUID | None:
    if not isinstance(value, str):
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _create_key_file(path: Path) -> bytes:
    """A new private key written to `path` (mode 0600) unless another process just did; its PEM.

    The key is written to a temporary file first, then linked into place: `path` never holds a
    partial key, and a key that another server created meanwhile is kept, not replaced.
    """
    pem = ECKey.generate_key(CURVE).as_pem(private=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as error:
        raise _cannot_create(path, error) from error
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(pem)
            file.flush()
            os.fsync(file.fileno())
        os.link(temporary, path)
    except FileExistsError:
        return path.read_bytes()
    except OSError as error:
        raise _cannot_create(path, error) from error
    finally:
        temporary.unlink(missing_ok=True)
    return pem


def _cannot_create(path: Path, error: OSError) -> ServerConfigError:
    return ServerConfigError(
        f"cannot create the token signing key {path}: {error.strerror}; make its directory "
        "writable by the server, or point the setting at another path"
    )
