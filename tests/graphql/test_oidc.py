"""Provider tokens: checked against a real OpenID Connect provider's published, rotating keys."""

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from joserfc.jwk import ECKey, RSAKey

from stardag_graphql.errors import CredentialError
from stardag_graphql.oidc import ProviderIdentity, ProviderVerifier
from tests.conftest import free_port
from tests.identity_provider import IdentityProvider

AUDIENCE = "stardag-registry"
CLIENT = "stardag-cli"
JWKS = "/jwks"
DISCOVERY = "/.well-known/openid-configuration"


@contextlib.contextmanager
def provider() -> Iterator[IdentityProvider]:
    """A running provider that knows alice, bob (email not verified) and the CLI client."""
    with IdentityProvider(audience=AUDIENCE) as idp:
        idp.add_user("alice", "alice@example.com")
        idp.add_user("bob", "bob@example.com", email_verified=False)
        idp.add_client(CLIENT, ["http://127.0.0.1/callback"])
        yield idp


@pytest.fixture(scope="module")
def idp() -> Iterator[IdentityProvider]:
    """A provider shared by the tests that leave it as it is."""
    with provider() as idp:
        yield idp


@pytest.fixture
def own_idp() -> Iterator[IdentityProvider]:
    """A provider for one test, which rotates its keys or stops it."""
    with provider() as idp:
        yield idp


@pytest.fixture
def requested() -> list[str]:
    """The paths the verifier asked the provider for, in order."""
    return []


@pytest.fixture
async def http(requested: list[str]) -> AsyncIterator[httpx.AsyncClient]:
    async def record(request: httpx.Request) -> None:
        requested.append(request.url.path)

    async with httpx.AsyncClient(event_hooks={"request": [record]}) as client:
        yield client


@pytest.fixture
def verifier(idp: IdentityProvider, http: httpx.AsyncClient) -> ProviderVerifier:
    return ProviderVerifier(idp.issuer, AUDIENCE, http=http)


def claims(idp: IdentityProvider, **changes: Any) -> dict[str, Any]:
    """Valid claims for alice, with `changes` (a `None` drops the claim)."""
    now = int(time.time())
    valid = {
        "iss": idp.issuer,
        "aud": AUDIENCE,
        "sub": "alice",
        "iat": now,
        "exp": now + 300,
        "email": "alice@example.com",
        "email_verified": True,
    }
    merged = valid | changes
    return {name: value for name, value in merged.items() if value is not None}


def access_token(idp: IdentityProvider, user: str, scope: str) -> str:
    """An access token exactly as the provider's token endpoint issues it."""
    client = idp.clients[CLIENT]
    return str(
        idp.generate_token("authorization_code", client, idp.users[user], scope)["access_token"]
    )


async def test_a_provider_access_token_gives_the_identity(
    idp: IdentityProvider, verifier: ProviderVerifier
) -> None:
    identity = await verifier.verify(access_token(idp, "alice", "openid email"))

    assert identity == ProviderIdentity(idp.issuer, "alice", "alice@example.com", True, "")


async def test_the_name_is_read_and_the_audience_may_be_a_list(
    idp: IdentityProvider, verifier: ProviderVerifier
) -> None:
    token = idp.mint(claims(idp, name="Alice Liddell", aud=["account", AUDIENCE]))

    identity = await verifier.verify(token)

    assert identity.name == "Alice Liddell"


@pytest.mark.parametrize(
    ("email_verified", "expected"),
    [(True, True), ("true", True), (False, False), (None, False), ("yes", False)],
    ids=["true", "string-true", "false", "absent", "other"],
)
async def test_email_verified_is_true_only_when_the_provider_says_so(
    idp: IdentityProvider, verifier: ProviderVerifier, email_verified: Any, expected: bool
) -> None:
    identity = await verifier.verify(idp.mint(claims(idp, email_verified=email_verified)))

    assert identity.email_verified is expected


async def test_an_unverified_email_from_the_provider_is_reported_as_such(
    idp: IdentityProvider, verifier: ProviderVerifier
) -> None:
    identity = await verifier.verify(access_token(idp, "bob", "openid email"))

    assert (identity.email, identity.email_verified) == ("bob@example.com", False)


async def test_a_token_without_email_asks_for_the_email_scope(
    idp: IdentityProvider, verifier: ProviderVerifier
) -> None:
    token = access_token(idp, "alice", "openid")

    with pytest.raises(CredentialError, match=r"no email address.*the `email` scope"):
        await verifier.verify(token)


ATTACKS: dict[str, tuple[Callable[[IdentityProvider], str], str]] = {
    "alg none": (lambda idp: idp.mint(claims(idp), alg="none"), "is signed with 'none'"),
    "HS256 keyed with the public key": (
        lambda idp: idp.mint(claims(idp), alg="HS256"),
        "is signed with 'HS256', not with one of the asymmetric algorithms",
    ),
    "another issuer": (
        lambda idp: idp.mint(claims(idp, iss="https://evil.example")),
        "was issued by 'https://evil.example', not by http://127.0.0.1",
    ),
    "another audience": (
        lambda idp: idp.mint(claims(idp, aud="another-api")),
        "is meant for 'another-api', not for this registry",
    ),
    "expired": (
        lambda idp: idp.mint(claims(idp, exp=int(time.time()) - 60)),
        "has expired: log in again with `stardag auth login`",
    ),
    "no expiry": (lambda idp: idp.mint(claims(idp, exp=None)), "lacks the claim\\(s\\) `exp`"),
    "not yet valid": (
        lambda idp: idp.mint(claims(idp, nbf=int(time.time()) + 600)),
        "is not valid yet \\(its `nbf`",
    ),
    "issued in the future": (
        lambda idp: idp.mint(claims(idp, iat=int(time.time()) + 600)),
        "is not valid yet \\(its `iat`",
    ),
    "no subject": (lambda idp: idp.mint(claims(idp, sub=None)), "lacks the claim\\(s\\) `sub`"),
    "an empty subject": (lambda idp: idp.mint(claims(idp, sub="")), "invalid `sub` claim"),
    "an unknown kid": (
        lambda idp: idp.mint(claims(idp), kid="not-published"),
        "signed with a key that the provider at http://127.0.0.1:\\d+ does not publish",
    ),
    "a foreign key under the provider's kid": (
        lambda idp: idp.mint(claims(idp), key=RSAKey.generate_key(2048)),
        "has an invalid signature",
    ),
    "a foreign EC key under the provider's kid": (
        lambda idp: idp.mint(claims(idp), alg="ES256", key=ECKey.generate_key("P-256")),
        "does not publish",
    ),
}


@pytest.mark.parametrize(("forge", "message"), ATTACKS.values(), ids=ATTACKS.keys())
async def test_a_hostile_token_is_refused(
    idp: IdentityProvider,
    verifier: ProviderVerifier,
    forge: Callable[[IdentityProvider], str],
    message: str,
) -> None:
    token = forge(idp)

    with pytest.raises(CredentialError, match=message) as caught:
        await verifier.verify(token)

    assert str(caught.value).startswith("the identity provider's token ")
    assert token not in str(caught.value)


@pytest.mark.parametrize(
    "token",
    ["", "garbage", "a.b.c", "e30.e30.", "ä.ö.ü", "x" * 200_000, "\ud800.e30.e30", "W10.e30.e30"],
    ids=["empty", "word", "dots", "no-alg", "non-ascii", "huge", "surrogate", "list-header"],
)
async def test_a_malformed_token_is_refused_before_asking_the_provider(
    verifier: ProviderVerifier, requested: list[str], token: str
) -> None:
    with pytest.raises(CredentialError, match=r"^the identity provider's token is not a well-form"):
        await verifier.verify(token)

    assert requested == []


async def test_a_token_expired_within_the_leeway_is_accepted(
    idp: IdentityProvider, verifier: ProviderVerifier
) -> None:
    token = idp.mint(claims(idp, exp=int(time.time()) - 10))

    assert (await verifier.verify(token)).subject == "alice"


async def test_keys_are_fetched_once_and_shared_by_concurrent_verifications(
    idp: IdentityProvider, verifier: ProviderVerifier, requested: list[str]
) -> None:
    token = idp.mint(claims(idp))

    identities = await asyncio.gather(*(verifier.verify(token) for _ in range(20)))

    assert {identity.subject for identity in identities} == {"alice"}
    assert requested == [DISCOVERY, JWKS]


async def test_a_token_signed_with_a_rotated_key_is_accepted_after_a_refetch(
    own_idp: IdentityProvider, http: httpx.AsyncClient, requested: list[str]
) -> None:
    verifier = ProviderVerifier(own_idp.issuer, AUDIENCE, http=http)
    await verifier.verify(own_idp.mint(claims(own_idp)))
    own_idp.rotate_key()

    identity = await verifier.verify(own_idp.mint(claims(own_idp)))

    assert identity.subject == "alice"
    assert requested == [DISCOVERY, JWKS, JWKS]


async def test_a_flood_of_unknown_kids_refetches_the_keys_at_most_once(
    idp: IdentityProvider, http: httpx.AsyncClient, requested: list[str]
) -> None:
    verifier = ProviderVerifier(idp.issuer, AUDIENCE, http=http, min_refresh_seconds=1.0)
    await verifier.verify(idp.mint(claims(idp)))
    flood = [idp.mint(claims(idp), kid=uuid.uuid4().hex) for _ in range(50)]

    outcomes = await asyncio.gather(*map(verifier.verify, flood), return_exceptions=True)
    more = await asyncio.gather(*map(verifier.verify, flood), return_exceptions=True)

    assert all(isinstance(outcome, CredentialError) for outcome in outcomes + more)
    assert requested.count(JWKS) == 2
    await asyncio.sleep(1.0)
    with pytest.raises(CredentialError, match="does not publish"):
        await verifier.verify(flood[0])
    assert requested.count(JWKS) == 3


async def test_the_cached_keys_expire_and_retired_keys_stop_working(
    own_idp: IdentityProvider, http: httpx.AsyncClient, requested: list[str]
) -> None:
    verifier = ProviderVerifier(own_idp.issuer, AUDIENCE, http=http, cache_seconds=1.0)
    old = own_idp.mint(claims(own_idp))
    await verifier.verify(old)
    own_idp.rotate_key()
    own_idp.retire_old_keys()

    still_cached = await verifier.verify(old)
    await asyncio.sleep(1.0)
    with pytest.raises(CredentialError, match="does not publish"):
        await verifier.verify(old)

    assert still_cached.subject == "alice"
    assert requested == [DISCOVERY, JWKS, JWKS]


async def test_an_unreachable_provider_is_reported_not_raised_as_a_traceback(
    idp: IdentityProvider,
) -> None:
    issuer = f"http://127.0.0.1:{free_port()}"
    verifier = ProviderVerifier(issuer, AUDIENCE)
    try:
        with pytest.raises(CredentialError) as caught:
            await verifier.verify(idp.mint(claims(idp)))
    finally:
        await verifier.aclose()

    assert str(caught.value) == (
        f"the identity provider at {issuer} could not be reached (ConnectError): try again later"
    )


async def test_the_verifier_recovers_when_the_provider_comes_back(
    own_idp: IdentityProvider, http: httpx.AsyncClient
) -> None:
    verifier = ProviderVerifier(own_idp.issuer, AUDIENCE, http=http)
    token = own_idp.mint(claims(own_idp))
    own_idp.close()
    with pytest.raises(CredentialError, match="could not be reached"):
        await verifier.verify(token)

    own_idp.start()

    assert (await verifier.verify(token)).subject == "alice"


async def test_concurrent_verifications_share_one_failed_fetch(
    own_idp: IdentityProvider, http: httpx.AsyncClient, requested: list[str]
) -> None:
    verifier = ProviderVerifier(own_idp.issuer, AUDIENCE, http=http)
    token = own_idp.mint(claims(own_idp))
    own_idp.close()

    outcomes = await asyncio.gather(
        *(verifier.verify(token) for _ in range(10)), return_exceptions=True
    )

    assert all(isinstance(outcome, CredentialError) for outcome in outcomes)
    assert requested == [DISCOVERY]


async def test_a_discovery_document_for_another_issuer_is_refused(
    idp: IdentityProvider, http: httpx.AsyncClient
) -> None:
    verifier = ProviderVerifier(f"{idp.issuer}/", AUDIENCE, http=http)

    with pytest.raises(CredentialError, match=r"names the issuer 'http://127.0.0.1:\d+', not"):
        await verifier.verify(idp.mint(claims(idp)))


FAULTS = {
    "an error status": (httpx.Response(503), "answered 503 for http://idp.test/.well-known"),
    "no JSON": (httpx.Response(200, text="<html>"), "served no JSON at http://idp.test/"),
    "no object": (httpx.Response(200, json=[1]), "served no JSON object at http://idp.test/"),
    "no jwks_uri": (httpx.Response(200, json={"issuer": "http://idp.test"}), "has no `jwks_uri`"),
}


@pytest.mark.parametrize(("response", "message"), FAULTS.values(), ids=FAULTS.keys())
async def test_a_broken_discovery_document_is_reported(
    idp: IdentityProvider, response: httpx.Response, message: str
) -> None:
    transport = httpx.MockTransport(lambda request: response)
    async with httpx.AsyncClient(transport=transport) as http:
        verifier = ProviderVerifier("http://idp.test", AUDIENCE, http=http)
        with pytest.raises(CredentialError, match=message):
            await verifier.verify(idp.mint(claims(idp)))


async def test_a_key_set_without_usable_keys_is_reported(idp: IdentityProvider) -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        if request.url.path == DISCOVERY:
            document = {"issuer": "http://idp.test", "jwks_uri": "http://idp.test/jwks"}
            return httpx.Response(200, json=document)
        return httpx.Response(200, json={"keys": [{"kty": "unknown"}]})

    async with httpx.AsyncClient(transport=httpx.MockTransport(broken)) as http:
        verifier = ProviderVerifier("http://idp.test", AUDIENCE, http=http)
        with pytest.raises(CredentialError, match="publishes no keys the registry can read"):
            await verifier.verify(idp.mint(claims(idp)))


async def test_the_repr_names_the_issuer_and_audience(verifier: ProviderVerifier) -> None:
    assert repr(verifier) == f"<ProviderVerifier {verifier.issuer} audience={AUDIENCE!r}>"


async def test_closing_a_verifier_leaves_a_client_it_was_given_open(
    idp: IdentityProvider, verifier: ProviderVerifier, http: httpx.AsyncClient
) -> None:
    await verifier.aclose()

    assert (await verifier.verify(idp.mint(claims(idp)))).subject == "alice"
    assert (await http.get(f"{idp.issuer}{JWKS}")).status_code == 200
