"""Organizations with every kind of caller, for tests of a registry in server mode.

`make_tenant` builds, straight through the store, an organization whose `default` workspace
holds a build, a task, a target root, an invite and two API keys (one revoked), with an
owner, an admin, a member, a `target` member to act on, and a member who was removed.
`ServerMode` is a registry under uvicorn in server mode, with the registry's signer, so that
tests mint tokens for any of them as `POST /auth/token` would.
"""

import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from strawberry.relay import to_base64

from stardag_graphql.models import Membership, Role, User, Workspace
from stardag_graphql.store import apikeys, builds, organizations, tasks
from stardag_graphql.tokens import TokenSigner

ROLES = {"owner": Role.OWNER, "admin": Role.ADMIN, "member": Role.MEMBER, "target": Role.MEMBER}


@dataclass
class Tenant:
    """An organization's ids (global, as the API shows them) and its callers' credentials."""

    label: str
    organization_pk: uuid.UUID
    workspace_pk: uuid.UUID
    users: dict[str, uuid.UUID]
    api_key: str
    revoked_key: str
    build_pk: uuid.UUID
    invite_pk: uuid.UUID
    api_key_prefix: str
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def organization(self) -> str:
        return to_base64("Organization", self.organization_pk)

    @property
    def workspace(self) -> str:
        return to_base64("Workspace", self.workspace_pk)

    @property
    def build(self) -> str:
        return to_base64("Build", self.build_pk)

    @property
    def invite(self) -> str:
        return to_base64("Invite", self.invite_pk)

    def email(self, who: str) -> str:
        return f"{who}-{self.label}@example.com"


async def make_tenant(
    sessions: async_sessionmaker[AsyncSession], label: str | None = None, task_id: str = "t1"
) -> Tenant:
    """A fresh organization with every kind of caller (see the module's docstring)."""
    label = label or uuid.uuid4().hex[:8]
    async with sessions() as session, session.begin():
        users = {}
        for who in (*ROLES, "removed"):
            user = User(
                email=f"{who}-{label}@example.com",
                email_verified=True,
                oidc_subject=f"{who}-{label}",
                display_name=who.title(),
            )
            session.add(user)
            await session.flush()
            users[who] = user.id
        organization = await organizations.create_organization(
            session, users["owner"], f"org-{label}", f"Org {label}"
        )
        for who, role in ROLES.items():
            if who != "owner":
                session.add(
                    Membership(organization_id=organization.id, user_id=users[who], role=role)
                )
        workspace = await session.scalar(
            Workspace.__table__.select()
            .with_only_columns(Workspace.id)
            .where(Workspace.organization_id == organization.id)
        )
        assert workspace is not None
        key = await apikeys.create_api_key(session, workspace, "ci", users["admin"])
        revoked = await apikeys.create_api_key(session, workspace, "old", users["admin"])
        await apikeys.revoke_api_key(session, workspace, revoked.row.prefix)
        build = await builds.start_build(session, workspace, users["member"], "nightly")
        await tasks.register_tasks(session, workspace, [tasks.TaskRegistration(task_id, "T")])
        await organizations.set_target_root(session, workspace, "data", "s3://bucket/data")
        invite = await organizations.invite_member(
            session, organization.id, users["owner"], f"invitee-{label}@example.com", Role.MEMBER
        )
    tenant = Tenant(
        label=label,
        organization_pk=organization.id,
        workspace_pk=workspace,
        users=users,
        api_key=key.secret,
        revoked_key=revoked.secret,
        build_pk=build.id,
        invite_pk=invite.id,
        api_key_prefix=key.row.prefix,
    )
    # The removed member had a token from when they were a member.
    async with sessions() as session, session.begin():
        session.add(
            Membership(organization_id=organization.id, user_id=users["removed"], role=Role.ADMIN)
        )
        await session.flush()
        await organizations.remove_member(
            session, organization.id, users["owner"], tenant.email("removed")
        )
    return tenant


@dataclass
class ServerMode:
    """A registry in server mode under uvicorn: its URL, its signer and its database."""

    url: str
    signer: TokenSigner
    sessions: async_sessionmaker[AsyncSession]

    def token(self, tenant: Tenant, who: str, organization: uuid.UUID | None = None) -> str:
        """A registry token for `who` of `tenant`, scoped to its organization by default."""
        token, _ = self.signer.mint(
            tenant.users[who], organization or tenant.organization_pk, timedelta(minutes=5)
        )
        return token

    async def post(
        self, query: str, credential: str | None = None, **variables: Any
    ) -> httpx.Response:
        """POST a GraphQL operation with `credential` as the bearer (none: anonymous)."""
        headers = {"Authorization": f"Bearer {credential}"} if credential else {}
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as client:
            return await client.post(
                "/graphql", json={"query": query, "variables": variables}, headers=headers
            )
