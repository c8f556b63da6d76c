"""The declared permission table, enforced: every operation it names, for every kind of caller.

The matrix runs over HTTP against a registry in server mode. Each cell gets a fresh
organization (`make_tenant`), so a cell that removes a member or revokes a key changes
nothing for the next one. The callers: each role, a workspace API key, an anonymous
request, a member who was removed, a revoked key, and another organization's owner.
"""

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from graphql import build_schema
from sqlalchemy.ext.asyncio import AsyncSession

from stardag_graphql.models import Role
from stardag_graphql.permissions import (
    API_KEY_ACTIONS,
    OPERATIONS,
    PERMISSIONS,
    SIGNED_IN,
    Action,
    allowed,
)
from stardag_graphql.schema import schema
from stardag_graphql.settings import Settings
from stardag_graphql.store.apikeys import create_api_key, revoke_api_key, verify_api_key
from tests.graphql.conftest import Api, server_mode_at, server_settings, serving_settings
from tests.graphql.tenants import ServerMode, Tenant, make_tenant
from tests.identity_provider import IdentityProvider

NOW = "2026-11-22T12:00:00+00:00"


@dataclass(frozen=True)
class Operation:
    """A document exercising one `Type.field`, its variables, and where its answer lands."""

    document: str
    variables: Callable[[Tenant], dict[str, Any]]
    field: str

    def value(self, data: dict[str, Any] | None) -> Any:
        """The operation's field in `data` (None when anything on the way is null)."""
        for key in self.field.split("."):
            if not isinstance(data, dict):
                return None
            data = data.get(key)
        return data


def _w(tenant: Tenant) -> dict[str, Any]:
    return {"w": tenant.workspace}


def _o(tenant: Tenant) -> dict[str, Any]:
    return {"o": tenant.organization}


ORGANIZATION_FIELD = "query($o: ID!) {{ node(id: $o) {{ ... on Organization {{ {} }} }} }}"

OPERATION_DOCUMENTS: dict[str, Operation] = {
    "Workspace.tasks": Operation(
        "query($w: ID!) { workspace(id: $w) { tasks(first: 1) { totalCount } } }",
        _w,
        "workspace.tasks",
    ),
    "Organization.members": Operation(
        ORGANIZATION_FIELD.format("members { role }"), _o, "node.members"
    ),
    "Organization.invites": Operation(
        ORGANIZATION_FIELD.format("invites { email }"), _o, "node.invites"
    ),
    "Workspace.apiKeys": Operation(
        "query($w: ID!) { workspace(id: $w) { apiKeys { prefix } } }", _w, "workspace.apiKeys"
    ),
    "Mutation.startBuild": Operation(
        "mutation($w: ID!) { startBuild(workspaceId: $w) { name } }", _w, "startBuild"
    ),
    "Mutation.finishBuild": Operation(
        "mutation($b: ID!) { finishBuild(buildId: $b, status: COMPLETED) { status } }",
        lambda t: {"b": t.build},
        "finishBuild",
    ),
    "Mutation.registerTasks": Operation(
        'mutation($w: ID!) { registerTasks(workspaceId: $w, tasks: [{taskId: "t2", name: "T"}])'
        " { registered } }",
        _w,
        "registerTasks",
    ),
    "Mutation.recordEvents": Operation(
        "mutation($w: ID!, $e: [EventInput!]!) { recordEvents(workspaceId: $w, events: $e) "
        "{ recorded } }",
        lambda t: {
            "w": t.workspace,
            "e": [{"eventId": "e1", "kind": "TASK_RUNNING", "occurredAt": NOW, "taskId": "t1"}],
        },
        "recordEvents",
    ),
    "Mutation.acquireLock": Operation(
        'mutation($w: ID!) { acquireLock(workspaceId: $w, key: "k", holder: "h", '
        "ttlSeconds: 60) { acquired } }",
        _w,
        "acquireLock",
    ),
    "Mutation.renewLock": Operation(
        'mutation($w: ID!) { renewLock(workspaceId: $w, key: "k", holder: "h", fencingToken: 1,'
        " ttlSeconds: 60) { acquired } }",
        _w,
        "renewLock",
    ),
    "Mutation.releaseLock": Operation(
        'mutation($w: ID!) { releaseLock(workspaceId: $w, key: "k", holder: "h", '
        "fencingToken: 1) }",
        _w,
        "releaseLock",
    ),
    "Mutation.recordEventsUnderLock": Operation(
        'mutation($w: ID!) { recordEventsUnderLock(workspaceId: $w, key: "k", holder: "h", '
        "fencingToken: 1, events: []) }",
        _w,
        "recordEventsUnderLock",
    ),
    "Mutation.acquireLocks": Operation(
        'mutation($w: ID!) { acquireLocks(workspaceId: $w, keys: ["k"], holder: "h", '
        "ttlSeconds: 60) { acquired } }",
        _w,
        "acquireLocks",
    ),
    "Mutation.renewLocks": Operation(
        'mutation($w: ID!) { renewLocks(workspaceId: $w, leases: [{key: "k", fencingToken: 1}],'
        ' holder: "h", ttlSeconds: 60) }',
        _w,
        "renewLocks",
    ),
    "Mutation.releaseLocks": Operation(
        'mutation($w: ID!) { releaseLocks(workspaceId: $w, leases: [{key: "k", '
        'fencingToken: 1}], holder: "h") }',
        _w,
        "releaseLocks",
    ),
    "Mutation.recordEventsUnderLocks": Operation(
        'mutation($w: ID!) { recordEventsUnderLocks(workspaceId: $w, holder: "h", '
        'completions: [{key: "k", fencingToken: 1, events: []}]) }',
        _w,
        "recordEventsUnderLocks",
    ),
    "Mutation.putAsset": Operation(
        'mutation($w: ID!) { putAsset(workspaceId: $w, taskId: "t1", name: "report", '
        'kind: MARKDOWN, body: "# hi") { name } }',
        _w,
        "putAsset",
    ),
    "Mutation.appendLogs": Operation(
        "mutation($w: ID!, $l: [LogLineInput!]!) { appendLogs(workspaceId: $w, "
        'taskId: "t1", lines: $l) { appended } }',
        lambda t: {"w": t.workspace, "l": [{"seq": 1, "text": "hello", "loggedAt": NOW}]},
        "appendLogs",
    ),
    "Mutation.createApiKey": Operation(
        'mutation($w: ID!) { createApiKey(workspaceId: $w, name: "ci2") { secret } }',
        _w,
        "createApiKey",
    ),
    "Mutation.revokeApiKey": Operation(
        "mutation($w: ID!, $p: String!) { revokeApiKey(workspaceId: $w, prefix: $p) { name } }",
        lambda t: {"w": t.workspace, "p": t.api_key_prefix},
        "revokeApiKey",
    ),
    "Mutation.setTargetRoot": Operation(
        'mutation($w: ID!) { setTargetRoot(workspaceId: $w, name: "models", '
        'uri: "s3://bucket/models") { uri } }',
        _w,
        "setTargetRoot",
    ),
    "Mutation.removeTargetRoot": Operation(
        'mutation($w: ID!) { removeTargetRoot(workspaceId: $w, name: "data") }',
        _w,
        "removeTargetRoot",
    ),
    "Mutation.createWorkspace": Operation(
        'mutation($o: ID!) { createWorkspace(organizationId: $o, slug: "ml", name: "ML") '
        "{ slug } }",
        _o,
        "createWorkspace",
    ),
    "Mutation.archiveWorkspace": Operation(
        "mutation($w: ID!) { archiveWorkspace(workspaceId: $w) { archivedAt } }",
        _w,
        "archiveWorkspace",
    ),
    "Mutation.restoreWorkspace": Operation(
        "mutation($w: ID!) { restoreWorkspace(workspaceId: $w) { archivedAt } }",
        _w,
        "restoreWorkspace",
    ),
    "Mutation.renameWorkspace": Operation(
        'mutation($w: ID!) { renameWorkspace(workspaceId: $w, name: "Renamed") { name } }',
        _w,
        "renameWorkspace",
    ),
    "Mutation.inviteMember": Operation(
        'mutation($o: ID!) { inviteMember(organizationId: $o, email: "new@example.com", '
        "role: MEMBER) { email } }",
        _o,
        "inviteMember",
    ),
    "Mutation.revokeInvite": Operation(
        "mutation($i: ID!) { revokeInvite(inviteId: $i) }",
        lambda t: {"i": t.invite},
        "revokeInvite",
    ),
    "Mutation.setMemberRole": Operation(
        "mutation($o: ID!, $e: String!) { setMemberRole(organizationId: $o, email: $e, "
        "role: ADMIN) { role } }",
        lambda t: {"o": t.organization, "e": t.email("target")},
        "setMemberRole",
    ),
    "Mutation.removeMember": Operation(
        "mutation($o: ID!, $e: String!) { removeMember(organizationId: $o, email: $e) }",
        lambda t: {"o": t.organization, "e": t.email("target")},
        "removeMember",
    ),
}

ROLE_CALLERS = {"owner": Role.OWNER, "admin": Role.ADMIN, "member": Role.MEMBER}
OUTSIDERS = ("anonymous", "revoked_key", "removed", "foreign_owner")
CALLERS = (*ROLE_CALLERS, "api_key", *OUTSIDERS)


@pytest.fixture(scope="module")
def registry_url(
    identity_provider: IdentityProvider, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Settings]]:
    """One registry in server mode on SQLite for the whole matrix (each cell has its own
    organizations); the tenant tests cover PostgreSQL."""
    root = tmp_path_factory.mktemp("matrix")
    settings = server_settings(
        f"sqlite+aiosqlite:///{root / 'registry.db'}", identity_provider, root / "key.pem"
    )
    with serving_settings(settings) as url:
        yield url, settings


@pytest.fixture
async def server_mode(registry_url: tuple[str, Settings]) -> AsyncIterator[ServerMode]:
    """The matrix's registry, with sessions on its database in this test's event loop."""
    url, settings = registry_url
    async with server_mode_at(url, settings) as server:
        yield server


def test_the_table_grows_with_the_role() -> None:
    assert PERMISSIONS[Role.MEMBER] < PERMISSIONS[Role.ADMIN] < PERMISSIONS[Role.OWNER]
    assert PERMISSIONS[Role.MEMBER] > API_KEY_ACTIONS
    assert not allowed(None, Action.READ)


def test_every_mutation_is_in_the_table_and_every_entry_is_exercised() -> None:
    mutation = build_schema(schema.as_str()).mutation_type
    assert mutation is not None
    fields = {f"Mutation.{name}" for name in mutation.fields}
    declared = {name for name in OPERATIONS if name.startswith("Mutation.")}

    assert fields == declared | SIGNED_IN
    assert set(OPERATIONS) <= set(OPERATION_DOCUMENTS)
    assert set(Action) == set(OPERATIONS.values()) | {Action.READ, Action.MANAGE_OWNERS}


def _credential(
    server: ServerMode, tenant: Tenant, foreign: Tenant | None, caller: str
) -> str | None:
    if caller in ROLE_CALLERS or caller == "removed":
        return server.token(tenant, caller)
    if caller == "foreign_owner":
        assert foreign is not None
        return server.token(foreign, "owner")
    return {"api_key": tenant.api_key, "revoked_key": tenant.revoked_key}.get(caller)


def _expected_allowed(caller: str, action: Action) -> bool:
    if caller == "api_key":
        return allowed(Role.MEMBER, action, api_key=True)
    return allowed(ROLE_CALLERS[caller], action)


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("operation", sorted(OPERATION_DOCUMENTS))
async def test_each_caller_may_do_exactly_what_the_table_says(
    server_mode: ServerMode, operation: str, caller: str
) -> None:
    tenant = await make_tenant(server_mode.sessions)
    foreign = await make_tenant(server_mode.sessions) if caller == "foreign_owner" else None
    action = OPERATIONS.get(operation, Action.READ)
    spec = OPERATION_DOCUMENTS[operation]

    response = await server_mode.post(
        spec.document, _credential(server_mode, tenant, foreign, caller), **spec.variables(tenant)
    )

    body = response.json()
    errors = body.get("errors") or []
    codes = [error.get("extensions", {}).get("code") for error in errors]
    if caller in ("anonymous", "revoked_key"):
        assert response.status_code == 401, body
        assert codes == ["UNAUTHENTICATED"]
        assert "Bearer" in response.headers["WWW-Authenticate"]
        return
    assert response.status_code == 200, body
    if caller in ("removed", "foreign_owner"):
        # Reached as a missing object: a null, or NOT_FOUND from a mutation.
        assert codes in ([], ["NOT_FOUND"]), body
        assert spec.value(body.get("data")) is None
        assert tenant.label not in response.text
    elif _expected_allowed(caller, action):
        assert errors == [], body
        assert spec.value(body["data"]) is not None
    else:
        assert codes == ["FORBIDDEN"], body
        assert spec.value(body.get("data")) is None


@pytest.mark.parametrize("caller", ["member", "api_key", "anonymous"])
async def test_only_a_signed_in_person_creates_an_organization(
    server_mode: ServerMode, caller: str
) -> None:
    tenant = await make_tenant(server_mode.sessions)
    credential = _credential(server_mode, tenant, None, caller)

    response = await server_mode.post(
        'mutation { createOrganization(slug: "acme", name: "Acme") { slug name } }',
        credential,
    )

    if caller == "member":
        assert response.json()["data"] == {"createOrganization": {"slug": "acme", "name": "Acme"}}
    elif caller == "api_key":
        assert response.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    else:
        assert response.status_code == 401


async def test_an_api_key_is_checked_by_its_hash_and_dies_when_revoked(
    session: AsyncSession, api: Api
) -> None:
    (workspace,) = await api.context().workspace_ids()
    created = await create_api_key(session, workspace, "ci", api.identity.user_id)
    await session.commit()
    secret = created.secret
    forged = secret[:-4] + ("AAAA" if not secret.endswith("AAAA") else "BBBB")

    found = await verify_api_key(session, secret)

    assert found is not None
    assert found.id == created.row.id
    assert created.row.key_hash != secret
    assert secret not in repr(created)
    assert await verify_api_key(session, forged) is None
    assert await verify_api_key(session, "sd_nonsense") is None
    assert await verify_api_key(session, f"sd_{uuid.uuid4().hex[:10]}_x") is None
    await revoke_api_key(session, workspace, created.row.prefix)
    await session.commit()
    assert await verify_api_key(session, secret) is None


async def test_keys_are_listed_by_prefix_and_the_secret_is_shown_once(api: Api) -> None:
    workspace = await api.workspace_id()
    created = await api(
        'mutation($w: ID!) { createApiKey(workspaceId: $w, name: "ci") '
        "{ secret apiKey { name prefix revokedAt } } }",
        w=workspace,
    )
    prefix = created["createApiKey"]["apiKey"]["prefix"]
    await api(
        "mutation($w: ID!, $p: String!) { revokeApiKey(workspaceId: $w, prefix: $p) { name } }",
        w=workspace,
        p=prefix,
    )

    listed = await api(
        "query($w: ID!) { workspace(id: $w) { apiKeys { prefix revokedAt } } }", w=workspace
    )

    assert created["createApiKey"]["secret"].startswith(f"sd_{prefix}_")
    (key,) = listed["workspace"]["apiKeys"]
    assert key["prefix"] == prefix
    assert key["revokedAt"] is not None
