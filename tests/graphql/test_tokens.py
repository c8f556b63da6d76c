"""Registry tokens: minted and checked with one P-256 key; forgeries and stale tokens refused."""

import base64
import hashlib
import hmac
import json
import stat
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, Key, KeySet, RSAKey

from stardag_graphql.errors import CredentialError, ServerConfigError
from stardag_graphql.tokens import AUDIENCE, RegistryClaims, TokenSigner

ISSUER = "https://registry.example"
USER = uuid.UUID("3f2b8c1e-6d4a-4e8f-9b7c-1a2d3e4f5a6b")
ORGANIZATION = uuid.UUID("9c8b7a6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d")
TTL = timedelta(minutes=15)


@pytest.fixture
def key() -> ECKey:
    return ECKey.generate_key("P-256")


@pytest.fixture
def signer(key: ECKey) -> TokenSigner:
    return TokenSigner(key, ISSUER)


def claims(**changes: Any) -> dict[str, Any]:
    """Valid claims for `USER` in `ORGANIZATION`, with `changes` (a `None` drops the claim)."""
    now = int(time.time())
    valid = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(USER),
        "org": str(ORGANIZATION),
        "iat": now,
        "exp": now + 600,
        "jti": "j1",
    }
    merged = valid | changes
    return {name: value for name, value in merged.items() if value is not None}


def sign(payload: dict[str, Any], key: Key, kid: str | None, alg: str = "ES256") -> str:
    """`payload` signed with `key`, as anyone holding it could."""
    header = {"alg": alg} if kid is None else {"alg": alg, "kid": kid}
    return jwt.encode(header, payload, key, algorithms=[alg])


def hand_made(header: dict[str, Any], payload: dict[str, Any], secret: bytes | None) -> str:
    """A token assembled by hand: unsigned (`secret=None`, alg none) or HMAC-SHA256 signed."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
    if secret is None:
        return f"{signing_input}."
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_a_minted_token_verifies_to_its_user_organization_and_expiry(signer: TokenSigner) -> None:
    before = datetime.now(UTC)
    token, expires_at = signer.mint(USER, ORGANIZATION, TTL)

    assert signer.verify(token) == RegistryClaims(USER, ORGANIZATION, expires_at)
    assert before + TTL - timedelta(seconds=1) <= expires_at <= datetime.now(UTC) + TTL
    assert expires_at.tzinfo is UTC


def test_a_token_carries_the_documented_header_and_claims(signer: TokenSigner) -> None:
    published = KeySet.import_key_set({"keys": signer.jwks()["keys"]})
    token, expires_at = signer.mint(USER, ORGANIZATION, TTL)
    other, _ = signer.mint(USER, ORGANIZATION, TTL)

    decoded = jwt.decode(token, published, algorithms=["ES256"])

    assert decoded.header == {"typ": "JWT", "alg": "ES256", "kid": signer.kid}
    assert decoded.claims == {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(USER),
        "org": str(ORGANIZATION),
        "iat": decoded.claims["iat"],
        "exp": int(expires_at.timestamp()),
        "jti": decoded.claims["jti"],
    }
    assert decoded.claims["exp"] - decoded.claims["iat"] == TTL.total_seconds()
    assert decoded.claims["jti"] != jwt.decode(other, published).claims["jti"]


def test_the_key_id_is_the_rfc7638_thumbprint_and_the_jwks_is_public(
    signer: TokenSigner, key: ECKey
) -> None:
    (published,) = signer.jwks()["keys"]

    assert signer.kid == key.thumbprint()
    assert published == {
        "kty": "EC",
        "crv": "P-256",
        "x": key.as_dict()["x"],
        "y": key.as_dict()["y"],
        "kid": signer.kid,
        "use": "sig",
        "alg": "ES256",
    }
    assert "d" not in published


def test_the_repr_shows_no_key_material(signer: TokenSigner, key: ECKey) -> None:
    text = repr(signer)

    assert text == f"<TokenSigner issuer={ISSUER!r} kid={signer.kid!r}>"
    assert str(key.as_dict(private=True)["d"]) not in text


def test_mint_refuses_a_ttl_under_one_second(signer: TokenSigner) -> None:
    with pytest.raises(ValueError, match="at least one second"):
        signer.mint(USER, ORGANIZATION, timedelta(0))


@pytest.mark.parametrize(
    "key",
    [
        RSAKey.generate_key(2048),
        ECKey.generate_key("P-384"),
        ECKey.generate_key("P-256", private=False),
    ],
    ids=["rsa", "p-384", "public-only"],
)
def test_only_a_private_p256_key_can_sign(key: Key) -> None:
    with pytest.raises(ValueError, match="private EC key on P-256"):
        TokenSigner(key, ISSUER)  # type: ignore[arg-type]


def test_load_or_create_writes_a_private_key_file_once_and_reloads_it(tmp_path: Path) -> None:
    path = tmp_path / "state" / "keys" / "signing-key.pem"

    created = TokenSigner.load_or_create(path, ISSUER)
    token, _ = created.mint(USER, ORGANIZATION, TTL)
    reloaded = TokenSigner.load_or_create(path, ISSUER)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert reloaded.kid == created.kid
    assert reloaded.verify(token).user_id == USER
    assert [entry.name for entry in path.parent.iterdir()] == ["signing-key.pem"]


def test_a_key_file_another_server_created_meanwhile_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "signing-key.pem"
    first = TokenSigner.load_or_create(path, ISSUER)

    for _ in range(3):
        assert TokenSigner.load_or_create(path, ISSUER).kid == first.kid


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not a key\n",
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        ECKey.generate_key("P-256").as_pem(private=False),
        ECKey.generate_key("P-384").as_pem(private=True),
        RSAKey.generate_key(2048).as_pem(private=True),
    ],
    ids=["empty", "text", "truncated", "public-key", "p-384", "rsa"],
)
def test_a_key_file_that_is_not_a_p256_private_key_is_a_config_error(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "signing-key.pem"
    path.write_bytes(content)

    with pytest.raises(ServerConfigError, match="is not an EC P-256 private key") as caught:
        TokenSigner.load_or_create(path, ISSUER)

    assert str(path) in str(caught.value)
    assert path.read_bytes() == content


def test_an_unreadable_key_path_is_a_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a directory")

    with pytest.raises(ServerConfigError, match=r"cannot read the token signing key .*directory"):
        TokenSigner.load_or_create(blocker / "signing-key.pem", ISSUER)


def test_a_key_that_cannot_be_created_is_a_config_error(tmp_path: Path) -> None:
    dangling = tmp_path / "keys"
    dangling.symlink_to(tmp_path / "nowhere")

    with pytest.raises(ServerConfigError, match="cannot create the token signing key"):
        TokenSigner.load_or_create(dangling / "signing-key.pem", ISSUER)
    assert list(tmp_path.iterdir()) == [dangling]


def test_an_expired_token_is_refused_with_a_hint_to_refresh(
    signer: TokenSigner, key: ECKey
) -> None:
    now = int(time.time())
    expired = sign(claims(iat=now - 900, exp=now - 60), key, signer.kid)
    within_leeway = sign(claims(iat=now - 900, exp=now - 2), key, signer.kid)

    with pytest.raises(CredentialError, match="registry token has expired: refresh it"):
        signer.verify(expired)
    assert signer.verify(within_leeway).user_id == USER


FORGERIES: dict[str, Callable[[ECKey, str], str]] = {
    "alg none": lambda key, kid: hand_made({"alg": "none", "kid": kid}, claims(), None),
    "HS256 keyed with the public key": lambda key, kid: hand_made(
        {"alg": "HS256", "kid": kid}, claims(), key.as_pem(private=False)
    ),
    "a foreign key under our kid": lambda key, kid: sign(
        claims(), ECKey.generate_key("P-256"), kid
    ),
    "a foreign key under its own kid": lambda key, kid: sign(
        claims(), ECKey.generate_key("P-256"), "foreign"
    ),
    "our key under an unknown kid": lambda key, kid: sign(claims(), key, "unknown"),
    "our key without a kid": lambda key, kid: sign(claims(), key, None),
    "ES384 with a foreign key": lambda key, kid: sign(
        claims(), ECKey.generate_key("P-384"), kid, alg="ES384"
    ),
}


@pytest.mark.parametrize("forge", FORGERIES.values(), ids=FORGERIES.keys())
def test_a_token_not_signed_by_the_registry_is_refused(
    signer: TokenSigner, key: ECKey, forge: Callable[[ECKey, str], str]
) -> None:
    token = forge(key, signer.kid)

    with pytest.raises(CredentialError, match="registry token was not signed by this registry"):
        signer.verify(token)


WRONG_CLAIMS: dict[str, tuple[Callable[[], dict[str, Any]], str]] = {
    # Claims are made when a test runs: made at collection, they would expire in a long run.
    "another issuer": (
        lambda: claims(iss="https://other.example"),
        "was issued by another registry",
    ),
    "another audience": (lambda: claims(aud="stardag"), "is not meant for the registry"),
    "no expiry": (lambda: claims(exp=None), "invalid `exp` claim"),
    "no subject": (lambda: claims(sub=None), "invalid `sub` claim"),
    "no organization": (lambda: claims(org=None), "invalid `org` claim"),
    "a subject that is no UUID": (lambda: claims(sub="alice"), "names no valid user"),
    "an organization that is no UUID": (
        lambda: claims(org=42),
        "names no valid user or organization",
    ),
    "issued in the future": (lambda: claims(iat=int(time.time()) + 3600), "is not valid yet"),
}


@pytest.mark.parametrize(("payload", "message"), WRONG_CLAIMS.values(), ids=WRONG_CLAIMS.keys())
def test_a_token_signed_with_our_key_but_wrong_claims_is_refused(
    signer: TokenSigner, key: ECKey, payload: Callable[[], dict[str, Any]], message: str
) -> None:
    with pytest.raises(CredentialError, match=message) as caught:
        signer.verify(sign(payload(), key, signer.kid))

    assert str(caught.value).startswith("the registry token ")
    assert str(caught.value).endswith("sign in again with `stardag auth login`")


@pytest.mark.parametrize(
    "token",
    ["", "garbage", "a.b.c", "...", "e30.e30.", "ä.ö.ü", "x" * 200_000, "\ud800.e30.e30"],
    ids=["empty", "word", "dots", "only-dots", "no-alg", "non-ascii", "huge", "surrogate"],
)
def test_a_malformed_token_is_refused_without_being_quoted(signer: TokenSigner, token: str) -> None:
    with pytest.raises(CredentialError, match=r"^the registry token ") as caught:
        signer.verify(token)

    assert not token or token not in str(caught.value)


def test_a_token_for_another_registry_key_is_refused(signer: TokenSigner) -> None:
    other = TokenSigner(ECKey.generate_key("P-256"), ISSUER)
    token, _ = other.mint(USER, ORGANIZATION, TTL)

    with pytest.raises(CredentialError, match="not signed by this registry"):
        signer.verify(token)
