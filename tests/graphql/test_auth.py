"""Server mode, end to end: people sign in at a real OpenID Connect provider, exchange its
token for a registry token, and act in their organizations; bad tokens are refused with a
clear error; owners and roles keep their invariants, also under concurrent changes."""

import asyncio
import base64
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from gql import Client, GraphQLRequest
from gql.transport.exceptions import TransportQueryError
from gql.transport.websockets import WebsocketsTransport
from joserfc import jwt
from joserfc.jwk import ECKey
from sqlalchemy import func, select
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from stardag_graphql.app import create_app
from stardag_graphql.migrations import ensure_schema
from stardag_graphql.models import Membership, Role, User
from stardag_graphql.tokens import AUDIENCE as REGISTRY_AUDIENCE
from tests.conftest import serving
from tests.graphql.conftest import (
    AUDIENCE,
    CLIENT_ID,
    server_mode_at,
    server_settings,
)
from tests.graphql.tenants import ServerMode, make_tenant
from tests.identity_provider import IdentityProvider

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
VIEWER = """{
  viewer { email emailVerified memberships { organization { slug } role } invites { id } }
  organizations { slug viewerRole workspaces { slug } }
}"""


def device_login(provider: IdentityProvider, sub: str) -> str:
    """The provider's access token for `sub`, through the device flow as the CLI runs it."""
    with httpx.Client(base_url=provider.issuer) as http:
        device = http.post(
            "/device_authorization",
            data={"client_id": CLIENT_ID, "scope": "openid email profile"},
        ).json()
        provider.approve_device(device["user_code"], sub)
        form = {"grant_type": DEVICE_GRANT, "client_id": CLIENT_ID}
        tokens = http.post("/token", data=form | {"device_code": device["device_code"]}).json()
    return str(tokens["access_token"])


async def exchange(
    server: ServerMode, subject_token: str, organization: str | None = None
) -> httpx.Response:
    """POST /auth/token, as the CLI does after signing in."""
    body: dict[str, Any] = {"subject_token": subject_token}
    if organization is not None:
        body["organization"] = organization
    async with httpx.AsyncClient(base_url=server.url) as client:
        return await client.post("/auth/token", json=body)


def person(provider: IdentityProvider, verified: bool = True) -> tuple[str, str]:
    """A new person registered at the provider: their subject and email."""
    sub = f"p-{uuid.uuid4().hex[:8]}"
    email = f"{sub}@example.com"
    provider.add_user(sub, email, email_verified=verified)
    return sub, email


async def sign_in(
    server: ServerMode, provider: IdentityProvider, sub: str, organization: str | None = None
) -> str:
    """A registry token for `sub`, from a device login at the provider."""
    response = await exchange(server, device_login(provider, sub), organization)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


async def data(server: ServerMode, query: str, credential: str, **variables: Any) -> Any:
    response = await server.post(query, credential, **variables)
    body = response.json()
    assert response.status_code == 200, body
    assert not body.get("errors"), body
    return body["data"]


async def error(server: ServerMode, query: str, credential: str, **variables: Any) -> Any:
    body = (await server.post(query, credential, **variables)).json()
    assert body.get("errors"), body
    return body["errors"][0]


async def test_a_first_login_provisions_a_personal_organization_once(
    server_mode: ServerMode, identity_provider: IdentityProvider
) -> None:
    sub, email = person(identity_provider)

    first = await exchange(server_mode, device_login(identity_provider, sub))
    again = await exchange(server_mode, device_login(identity_provider, sub))

    assert first.status_code == 200, first.text
    body = first.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    seen = await data(server_mode, VIEWER, body["access_token"])
    slug = body["organization"]["slug"]
    assert seen["viewer"] == {
        "email": email,
        "emailVerified": True,
        "memberships": [{"organization": {"slug": slug}, "role": "OWNER"}],
        "invites": [],
    }
    assert seen["organizations"] == [
        {"slug": slug, "viewerRole": "OWNER", "workspaces": [{"slug": "default"}]}
    ]
    assert again.json()["organization"] == body["organization"]
    async with server_mode.sessions() as session:
        assert await session.scalar(select(func.count()).where(User.email == email)) == 1


async def test_the_registry_publishes_how_to_sign_in_and_its_keys(
    server_mode: ServerMode, identity_provider: IdentityProvider
) -> None:
    async with httpx.AsyncClient(base_url=server_mode.url) as client:
        config = (await client.get("/auth/config")).json()
        keys = (await client.get("/.well-known/jwks.json")).json()["keys"]

    assert config["mode"] == "server"
    assert config["issuer"] == identity_provider.issuer
    assert config["client_id"] == CLIENT_ID
    assert config["audience"] == AUDIENCE
    assert [key["kid"] for key in keys] == [server_mode.signer.kid]
    assert all("d" not in key for key in keys)


def _claims(provider: IdentityProvider, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": provider.issuer,
        "aud": AUDIENCE,
        "sub": "mallory",
        "email": "mallory@example.com",
        "email_verified": True,
        "iat": now,
        "exp": now + 600,
    }
    return {key: value for key, value in (claims | changes).items() if value is not None}


PROVIDER_ATTACKS: dict[str, Callable[[IdentityProvider], str]] = {
    "alg none": lambda p: p.mint(_claims(p), alg="none"),
    "wrong issuer": lambda p: p.mint(_claims(p, iss="https://evil.example.com")),
    "wrong audience": lambda p: p.mint(_claims(p, aud="someone-else")),
    "expired": lambda p: p.mint(_claims(p, exp=int(time.time()) - 3600)),
    "HS256 with the public key": lambda p: p.mint(_claims(p), alg="HS256"),
    "unknown kid": lambda p: p.mint(_claims(p), kid="no-such-key"),
    "foreign key": lambda p: p.mint(_claims(p), key=ECKey.generate_key("P-256"), alg="ES256"),
    "garbage": lambda p: "not.a.jwt",
}


@pytest.mark.parametrize("attack", list(PROVIDER_ATTACKS))
async def test_a_forged_or_stale_provider_token_gets_no_registry_token(
    server_mode: ServerMode, identity_provider: IdentityProvider, attack: str
) -> None:
    token = PROVIDER_ATTACKS[attack](identity_provider)

    response = await exchange(server_mode, token)

    assert response.status_code == 401, response.text
    (refused,) = response.json()["errors"]
    assert refused["extensions"]["code"] == "UNAUTHENTICATED"
    assert "token" in refused["message"]
    assert token not in response.text
    async with server_mode.sessions() as session:
        assert await session.scalar(select(User.id).where(User.oidc_subject == "mallory")) is None


def _registry_claims(server: ServerMode, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": server.signer.issuer,
        "aud": REGISTRY_AUDIENCE,
        "sub": str(uuid.uuid4()),
        "org": str(uuid.uuid4()),
        "iat": now,
        "exp": now + 600,
    }
    return claims | changes


def _unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part(header)}.{part(claims)}."


@pytest.fixture
def registry_key(tmp_path: Path) -> ECKey:
    """The registry's own signing key, read from the key file the server uses."""
    return ECKey.import_key((tmp_path / "key.pem").read_bytes())


async def test_forged_and_stale_registry_tokens_are_refused(
    server_mode: ServerMode, identity_provider: IdentityProvider, registry_key: ECKey
) -> None:
    tenant = await make_tenant(server_mode.sessions)
    claims = _registry_claims(
        server_mode, sub=str(tenant.users["owner"]), org=str(tenant.organization_pk)
    )
    kid = server_mode.signer.kid
    public_pem = registry_key.as_pem(private=False)
    forged = {
        "alg none": _unsigned({"alg": "none", "kid": kid}, claims),
        "expired": jwt.encode(
            {"alg": "ES256", "kid": kid}, claims | {"exp": int(time.time()) - 600}, registry_key
        ),
        "wrong audience": jwt.encode(
            {"alg": "ES256", "kid": kid}, claims | {"aud": AUDIENCE}, registry_key
        ),
        "wrong issuer": jwt.encode(
            {"alg": "ES256", "kid": kid}, claims | {"iss": "https://evil.example.com"}, registry_key
        ),
        "foreign key": jwt.encode(
            {"alg": "ES256", "kid": kid}, claims, ECKey.generate_key("P-256")
        ),
        "HS256 with the public key": identity_provider.mint(
            claims, alg="HS256", key=public_pem, kid=kid
        ),
        "unknown kid": jwt.encode({"alg": "ES256", "kid": "other"}, claims, registry_key),
        "a provider token": identity_provider.mint(_claims(identity_provider)),
    }
    genuine = jwt.encode({"alg": "ES256", "kid": kid}, claims, registry_key)
    assert (await server_mode.post("{ viewer { email } }", genuine)).status_code == 200

    for attack, token in forged.items():
        response = await server_mode.post("{ viewer { email } }", token)

        assert response.status_code == 401, (attack, response.text)
        assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        assert token not in response.text
    expired = (await server_mode.post("{ viewer { email } }", forged["expired"])).json()
    assert "expired" in expired["errors"][0]["message"]


async def test_a_verified_email_links_an_existing_account_and_an_unverified_one_does_not(
    server_mode: ServerMode, identity_provider: IdentityProvider
) -> None:
    tenant = await make_tenant(server_mode.sessions)
    async with server_mode.sessions() as session, session.begin():
        existing = User(email=f"linked-{tenant.label}@example.com", display_name="Linked")
        session.add(existing)
        await session.flush()
        session.add(
            Membership(organization_id=tenant.organization_pk, user_id=existing.id, role=Role.ADMIN)
        )
    unverified_sub = f"u-{tenant.label}"
    identity_provider.add_user(unverified_sub, existing.email, email_verified=False)
    verified_sub = f"v-{tenant.label}"
    identity_provider.add_user(verified_sub, existing.email)

    refused = await exchange(server_mode, device_login(identity_provider, unverified_sub))
    linked = await exchange(server_mode, device_login(identity_provider, verified_sub))

    assert refused.status_code == 401
    assert "not verified" in refused.text
    assert linked.status_code == 200, linked.text
    assert linked.json()["organization"]["slug"] == f"org-{tenant.label}"
    async with server_mode.sessions() as session:
        user = await session.get(User, existing.id)
        assert user is not None
        assert user.oidc_subject == verified_sub


async def test_an_invite_is_accepted_by_its_verified_address_only(
    server_mode: ServerMode, identity_provider: IdentityProvider
) -> None:
    tenant = await make_tenant(server_mode.sessions)
    sub, email = person(identity_provider)
    other_sub, _ = person(identity_provider)
    owner = server_mode.token(tenant, "owner")
    invite = await data(
        server_mode,
        "mutation($o: ID!, $e: String!) { inviteMember(organizationId: $o, email: $e, "
        "role: ADMIN) { id email role } }",
        owner,
        o=tenant.organization,
        e=email.upper(),
    )
    invite_id = invite["inviteMember"]["id"]
    invitee = await sign_in(server_mode, identity_provider, sub)
    stranger = await sign_in(server_mode, identity_provider, other_sub)
    accept = "mutation($i: ID!) { acceptInvite(inviteId: $i) { slug } }"

    listed = await data(
        server_mode, "{ viewer { invites { id role organization { slug } } } }", invitee
    )
    by_stranger = await error(server_mode, accept, stranger, i=invite_id)
    accepted = await data(server_mode, accept, invitee, i=invite_id)
    scoped = await sign_in(server_mode, identity_provider, sub, f"org-{tenant.label}")
    reached = await data(server_mode, VIEWER, scoped)

    assert listed["viewer"]["invites"] == [
        {"id": invite_id, "role": "ADMIN", "organization": {"slug": f"org-{tenant.label}"}}
    ]
    assert by_stranger["extensions"]["code"] == "NOT_FOUND"
    assert accepted == {"acceptInvite": {"slug": f"org-{tenant.label}"}}
    assert reached["organizations"][0]["viewerRole"] == "ADMIN"
    assert await error(server_mode, accept, invitee, i=invite_id)


async def test_a_declined_or_revoked_invite_is_gone(
    server_mode: ServerMode, identity_provider: IdentityProvider
) -> None:
    tenant = await make_tenant(server_mode.sessions)
    sub, email = person(identity_provider)
    owner = server_mode.token(tenant, "owner")
    invite_query = (
        "mutation($o: ID!, $e: String!) { inviteMember(organizationId: $o, email: $e, "
        "role: MEMBER) { id } }"
    )
    first = await data(server_mode, invite_query, owner, o=tenant.organization, e=email)
    invitee = await sign_in(server_mode, identity_provider, sub)

    await data(
        server_mode,
        "mutation($i: ID!) { declineInvite(inviteId: $i) }",
        invitee,
        i=first["inviteMember"]["id"],
    )
    second = await data(server_mode, invite_query, owner, o=tenant.organization, e=email)
    await data(
        server_mode,
        "mutation($i: ID!) { revokeInvite(inviteId: $i) }",
        owner,
        i=second["inviteMember"]["id"],
    )

    assert (await data(server_mode, VIEWER, invitee))["viewer"]["invites"] == []
    pending = await data(
        server_mode,
        "query($o: ID!) { node(id: $o) { ... on Organization { invites { email } } } }",
        owner,
        o=tenant.organization,
    )
    assert email not in str(pending)


SET_ROLE = (
    "mutation($o: ID!, $e: String!, $r: Role!) { setMemberRole(organizationId: $o, email: $e, "
    "role: $r) { role } }"
)
REMOVE = "mutation($o: ID!, $e: String!) { removeMember(organizationId: $o, email: $e) }"


async def test_an_organization_keeps_an_owner_and_nobody_raises_themselves(
    server_mode: ServerMode,
) -> None:
    tenant = await make_tenant(server_mode.sessions)
    owner, admin = server_mode.token(tenant, "owner"), server_mode.token(tenant, "admin")
    o = tenant.organization

    last_owner_steps_down = await error(
        server_mode, SET_ROLE, owner, o=o, e=tenant.email("owner"), r="ADMIN"
    )
    last_owner_removed = await error(server_mode, REMOVE, owner, o=o, e=tenant.email("owner"))
    admin_raises_self = await error(
        server_mode, SET_ROLE, admin, o=o, e=tenant.email("admin"), r="OWNER"
    )
    admin_removes_owner = await error(server_mode, REMOVE, admin, o=o, e=tenant.email("owner"))
    admin_makes_owner = await error(
        server_mode, SET_ROLE, admin, o=o, e=tenant.email("member"), r="OWNER"
    )

    assert "at least one owner" in last_owner_steps_down["message"]
    assert "at least one owner" in last_owner_removed["message"]
    for refused in (admin_raises_self, admin_removes_owner, admin_makes_owner):
        assert refused["extensions"]["code"] == "FORBIDDEN"
        assert "manage owners" in refused["message"]


async def test_a_demotion_or_removal_takes_effect_on_the_next_request(
    server_mode: ServerMode,
) -> None:
    tenant = await make_tenant(server_mode.sessions)
    owner, admin = server_mode.token(tenant, "owner"), server_mode.token(tenant, "admin")
    create_key = 'mutation($w: ID!) { createApiKey(workspaceId: $w, name: "k") { secret } }'
    await data(server_mode, create_key, admin, w=tenant.workspace)

    await data(
        server_mode, SET_ROLE, owner, o=tenant.organization, e=tenant.email("admin"), r="MEMBER"
    )
    demoted = await error(server_mode, create_key, admin, w=tenant.workspace)
    await data(server_mode, REMOVE, owner, o=tenant.organization, e=tenant.email("admin"))
    removed = await error(server_mode, create_key, admin, w=tenant.workspace)
    await data(
        server_mode,
        "mutation($w: ID!, $p: String!) { revokeApiKey(workspaceId: $w, prefix: $p) { name } }",
        owner,
        w=tenant.workspace,
        p=tenant.api_key_prefix,
    )
    revoked = await server_mode.post("{ organizations { slug } }", tenant.api_key)

    assert demoted["extensions"]["code"] == "FORBIDDEN"
    assert removed["extensions"]["code"] == "NOT_FOUND"
    assert revoked.status_code == 401


async def test_two_owners_removing_each_other_at_once_leave_one_owner(
    server_mode: ServerMode,
) -> None:
    for _ in range(4):
        tenant = await make_tenant(server_mode.sessions)
        owner = server_mode.token(tenant, "owner")
        o = tenant.organization
        await data(server_mode, SET_ROLE, owner, o=o, e=tenant.email("admin"), r="OWNER")
        other = server_mode.token(tenant, "admin")

        results = await asyncio.gather(
            server_mode.post(REMOVE, owner, o=o, e=tenant.email("admin")),
            server_mode.post(REMOVE, other, o=o, e=tenant.email("owner")),
        )

        outcomes = sorted(bool(response.json().get("errors")) for response in results)
        assert outcomes == [False, True], [response.json() for response in results]
        async with server_mode.sessions() as session:
            owners = await session.scalar(
                select(func.count()).where(
                    Membership.organization_id == tenant.organization_pk,
                    Membership.role == Role.OWNER,
                )
            )
        assert owners == 1


async def test_archiving_a_workspace_stops_builds_writing_to_it(server_mode: ServerMode) -> None:
    tenant = await make_tenant(server_mode.sessions)
    admin = server_mode.token(tenant, "admin")
    start = "mutation($w: ID!) { startBuild(workspaceId: $w) { name } }"

    await data(
        server_mode,
        "mutation($w: ID!) { archiveWorkspace(workspaceId: $w) { slug } }",
        admin,
        w=tenant.workspace,
    )
    refused = await error(server_mode, start, tenant.api_key, w=tenant.workspace)
    still_read = await data(
        server_mode,
        "query($w: ID!) { workspace(id: $w) { archivedAt tasks { totalCount } } }",
        tenant.api_key,
        w=tenant.workspace,
    )
    await data(
        server_mode,
        "mutation($w: ID!) { restoreWorkspace(workspaceId: $w) { slug } }",
        admin,
        w=tenant.workspace,
    )

    assert "archived" in refused["message"]
    assert still_read["workspace"]["archivedAt"] is not None
    assert still_read["workspace"]["tasks"]["totalCount"] == 1
    assert await data(server_mode, start, tenant.api_key, w=tenant.workspace)


async def test_over_the_rate_limit_a_caller_is_told_when_to_retry(
    identity_provider: IdentityProvider, tmp_path: Path
) -> None:
    settings = server_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'limited.db'}",
        identity_provider,
        tmp_path / "limited.pem",
        rate_limit_per_minute=3,
    )
    await ensure_schema(settings)
    with serving(create_app(settings)) as url:
        async with server_mode_at(url, settings) as server:
            tenant = await make_tenant(server.sessions)
            key_answers = [
                await server.post("{ organizations { slug } }", tenant.api_key) for _ in range(4)
            ]
            member = await server.post("{ organizations { slug } }", server.token(tenant, "member"))

    assert [response.status_code for response in key_answers] == [200, 200, 200, 429]
    limited = key_answers[-1]
    assert int(limited.headers["Retry-After"]) >= 1
    assert limited.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert member.status_code == 200


async def test_a_subscription_ends_when_its_key_is_revoked(server_mode: ServerMode) -> None:
    tenant = await make_tenant(server_mode.sessions)
    transport = WebsocketsTransport(
        url=server_mode.url.replace("http://", "ws://", 1) + "/graphql",
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
        headers={"Authorization": f"Bearer {tenant.api_key}"},
    )
    subscription = GraphQLRequest(
        "subscription($w: ID!) { taskStatusChanged(workspaceId: $w) { taskId } }",
        variable_values={"w": tenant.workspace},
    )
    async with Client(transport=transport, execute_timeout=20) as session:
        changes = session.subscribe(subscription)
        ended = asyncio.ensure_future(anext(aiter(changes)))
        await asyncio.sleep(0.5)
        await data(
            server_mode,
            "mutation($w: ID!, $p: String!) { revokeApiKey(workspaceId: $w, prefix: $p) { name } }",
            server_mode.token(tenant, "owner"),
            w=tenant.workspace,
            p=tenant.api_key_prefix,
        )

        with pytest.raises(TransportQueryError) as refused:
            await asyncio.wait_for(ended, 10)

    assert "API key is not valid" in str(refused.value)
    assert "subscription ended" in str(refused.value)


async def test_a_websocket_without_credentials_is_closed_with_the_reason(
    server_mode: ServerMode,
) -> None:
    url = server_mode.url.replace("http://", "ws://", 1) + "/graphql"

    async with connect(url, subprotocols=[Subprotocol("graphql-transport-ws")]) as websocket:
        with pytest.raises(ConnectionClosed) as closed:
            await websocket.recv()

    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401
    assert "needs a credential" in closed.value.rcvd.reason


async def test_graphiql_loads_without_credentials_but_its_operations_need_them(
    server_mode: ServerMode,
) -> None:
    async with httpx.AsyncClient(base_url=server_mode.url) as client:
        page = await client.get("/graphql", headers={"Accept": "text/html"})
        query = await client.get(
            "/graphql",
            params={"query": "{ organizations { slug } }"},
            headers={"Accept": "text/html"},
        )

    assert page.status_code == 200
    assert "graphiql" in page.text.lower()
    assert query.status_code == 401
