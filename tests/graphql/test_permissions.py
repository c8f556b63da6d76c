"""The declared permission table, enforced: every role against every action the API exposes."""

import uuid

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from stardag_graphql.models import Role
from stardag_graphql.permissions import API_KEY_ACTIONS, PERMISSIONS, Action, allowed
from stardag_graphql.store.apikeys import create_api_key, revoke_api_key, verify_api_key
from stardag_graphql.store.tenancy import Identity
from tests.graphql.conftest import Api

# One operation per action that the API exposes so far.
OPERATIONS = {
    Action.READ: "query($w: ID!) { workspace(id: $w) { tasks(first: 1) { totalCount } } }",
    Action.WRITE: "mutation($w: ID!) { startBuild(workspaceId: $w) { name } }",
    Action.MANAGE_API_KEYS: 'mutation($w: ID!) { createApiKey(workspaceId: $w, name: "ci") '
    "{ secret } }",
}


def test_the_table_grows_with_the_role() -> None:
    assert PERMISSIONS[Role.MEMBER] < PERMISSIONS[Role.ADMIN] < PERMISSIONS[Role.OWNER]
    assert PERMISSIONS[Role.MEMBER] == API_KEY_ACTIONS
    assert not allowed(None, Action.READ)


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("action", list(OPERATIONS))
async def test_each_role_may_do_exactly_what_the_table_says(
    api: Api, role: Role, action: Action
) -> None:
    workspace = await api.workspace_id()
    caller = Api(
        api.sessions,
        Identity(api.identity.user_id, dict.fromkeys(api.identity.roles, role)),
        api.notifier,
    )

    result = await caller.run(OPERATIONS[action], w=workspace)

    if allowed(role, action):
        assert not result.errors, result.errors
    else:
        assert result.errors is not None
        assert result.errors[0].extensions == {"code": "FORBIDDEN"}
        assert f"your role ({role.value}) may not" in result.errors[0].message


@pytest.mark.parametrize("action", list(OPERATIONS))
async def test_an_api_key_may_read_and_write_its_workspace_only(api: Api, action: Action) -> None:
    workspace = await api.workspace_id()
    (workspace_pk,) = await api.context().workspace_ids()
    key = Api(
        api.sessions,
        Identity(None, api.identity.roles, api_key_workspace=workspace_pk),
        api.notifier,
    )

    result = await key.run(OPERATIONS[action], w=workspace)

    if action in API_KEY_ACTIONS:
        assert not result.errors, result.errors
    else:
        assert result.errors is not None
        assert result.errors[0].extensions == {"code": "FORBIDDEN"}
    assert await key("{ viewer { email } }") == {"viewer": None}


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
