"""Who may see what: the caller's identity, and organizations and workspaces reached through it.

Every read starts from the caller's organizations. A workspace outside them is reported
exactly like a missing one, so an id from another tenant reveals nothing.

In local mode (the embedded registry, no login) there is one implicit user, organization
and workspace, created on first start.
"""

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Select, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from stardag_graphql.models import (
    ApiKey,
    Invite,
    Membership,
    Organization,
    Role,
    TargetRoot,
    User,
    Workspace,
)
from stardag_graphql.store.upsert import insert

LOCAL_USER_EMAIL = "local@localhost"
LOCAL_ORGANIZATION_SLUG = "local"
LOCAL_WORKSPACE_SLUG = "default"


class Reach(NamedTuple):
    """How the caller reaches a workspace: through which organization, and if it is archived."""

    organization_id: uuid.UUID
    archived: bool


@dataclass(frozen=True)
class Identity:
    """The caller: a user with a role in each of their organizations, or a workspace API key.

    An API key acts for the user who created it (if any), within its workspace only.
    `workspaces`, when the identity was read with them (as a request's identity is, in the
    same statement as its roles), are the workspaces the caller reaches; None: not read.
    """

    user_id: uuid.UUID | None
    roles: Mapping[uuid.UUID, Role]
    api_key_workspace: uuid.UUID | None = None
    workspaces: Mapping[uuid.UUID, Reach] | None = None

    @property
    def organization_ids(self) -> frozenset[uuid.UUID]:
        """The organizations the caller reaches."""
        return frozenset(self.roles)


async def ensure_local_identity(session: AsyncSession) -> Identity:
    """The local user, owner of the local organization with its default workspace (idempotent)."""
    await session.execute(
        insert(session, User)
        .values(id=uuid.uuid4(), email=LOCAL_USER_EMAIL, display_name="Local user")
        .on_conflict_do_nothing(index_elements=["email"])
    )
    await session.execute(
        insert(session, Organization)
        .values(id=uuid.uuid4(), slug=LOCAL_ORGANIZATION_SLUG, name="Local")
        .on_conflict_do_nothing(index_elements=["slug"])
    )
    user_id = await session.scalar(select(User.id).where(User.email == LOCAL_USER_EMAIL))
    organization_id = await session.scalar(
        select(Organization.id).where(Organization.slug == LOCAL_ORGANIZATION_SLUG)
    )
    assert user_id is not None
    assert organization_id is not None
    await session.execute(
        insert(session, Membership)
        .values(id=uuid.uuid4(), organization_id=organization_id, user_id=user_id, role=Role.OWNER)
        .on_conflict_do_nothing(index_elements=["organization_id", "user_id"])
    )
    await session.execute(
        insert(session, Workspace)
        .values(
            id=uuid.uuid4(),
            organization_id=organization_id,
            slug=LOCAL_WORKSPACE_SLUG,
            name="Default",
        )
        .on_conflict_do_nothing(index_elements=["organization_id", "slug"])
    )
    await session.commit()
    return Identity(user_id, {organization_id: Role.OWNER})


async def organizations(session: AsyncSession, identity: Identity) -> list[Organization]:
    """The caller's organizations, by slug."""
    rows = await session.scalars(
        select(Organization)
        .where(Organization.id.in_(identity.organization_ids))
        .order_by(Organization.slug)
    )
    return list(rows)


async def organization_by_slug(
    session: AsyncSession, identity: Identity, slug: str
) -> Organization | None:
    """The caller's organization `slug`, or None (also for someone else's)."""
    return await session.scalar(
        select(Organization).where(
            Organization.slug == slug, Organization.id.in_(identity.organization_ids)
        )
    )


async def workspace(
    session: AsyncSession, identity: Identity, workspace_id: uuid.UUID
) -> Workspace | None:
    """The workspace `workspace_id` if it is in one of the caller's organizations."""
    return await session.scalar(
        select(Workspace).where(
            Workspace.id == workspace_id,
            Workspace.organization_id.in_(identity.organization_ids),
        )
    )


async def workspace_ids(session: AsyncSession, identity: Identity) -> dict[uuid.UUID, Reach]:
    """Every workspace the caller reaches, with its organization and whether it is archived."""
    statement = select(Workspace.id, Workspace.organization_id, Workspace.archived_at).where(
        Workspace.organization_id.in_(identity.organization_ids)
    )
    if identity.api_key_workspace is not None:
        statement = statement.where(Workspace.id == identity.api_key_workspace)
    rows = await session.execute(statement)
    return {
        workspace: Reach(organization, archived_at is not None)
        for workspace, organization, archived_at in rows
    }


async def local_identity(session: AsyncSession, user_id: uuid.UUID) -> Identity:
    """The local user (local mode), with their role in each of their organizations and the
    workspaces they reach."""
    return await _member_identity(session, user_id, _MEMBERSHIPS, {"user_id": user_id})


async def member_identity(
    session: AsyncSession, user_id: uuid.UUID, organization_id: uuid.UUID
) -> Identity:
    """A signed-in user acting in one organization, with their role there as of now and the
    workspaces they reach through it.

    A user no longer a member gets no role: the organization then reads as missing to them.
    """
    return await _member_identity(
        session,
        user_id,
        _MEMBERSHIP_IN_ORGANIZATION,
        {"user_id": user_id, "organization_id": organization_id},
    )


# Roles and workspaces in one statement: a request's identity costs one round trip. Built
# once: every request reads an identity, and building the statement cost more than running it.
_MEMBERSHIPS = (
    select(Membership.organization_id, Membership.role, Workspace.id, Workspace.archived_at)
    .select_from(Membership)
    .outerjoin(Workspace, Workspace.organization_id == Membership.organization_id)
    .where(Membership.user_id == bindparam("user_id"))
)
_MEMBERSHIP_IN_ORGANIZATION = _MEMBERSHIPS.where(
    Membership.organization_id == bindparam("organization_id")
)


async def _member_identity(
    session: AsyncSession,
    user_id: uuid.UUID,
    memberships: Select[uuid.UUID, Role, uuid.UUID, datetime | None],
    values: dict[str, Any],
) -> Identity:
    rows = await session.execute(memberships, values)
    roles: dict[uuid.UUID, Role] = {}
    workspaces: dict[uuid.UUID, Reach] = {}
    for organization_id, role, workspace_id, archived_at in rows:
        roles[organization_id] = role
        if workspace_id is not None:
            workspaces[workspace_id] = Reach(organization_id, archived_at is not None)
    return Identity(user_id, roles, workspaces=workspaces)


async def workspaces_of(
    session: AsyncSession, identity: Identity, organization_id: uuid.UUID
) -> list[Workspace]:
    """The organization's workspaces that the caller reaches, by slug."""
    statement = select(Workspace).where(Workspace.organization_id == organization_id)
    if identity.api_key_workspace is not None:
        statement = statement.where(Workspace.id == identity.api_key_workspace)
    return list(await session.scalars(statement.order_by(Workspace.slug)))


async def memberships_of(
    session: AsyncSession, user_id: uuid.UUID
) -> list[tuple[Membership, Organization]]:
    """A user's memberships with their organizations, by slug."""
    rows = await session.execute(
        select(Membership, Organization)
        .join(Organization, Organization.id == Membership.organization_id)
        .where(Membership.user_id == user_id)
        .order_by(Organization.slug)
    )
    return [(membership, organization) for membership, organization in rows]


async def members_of(
    session: AsyncSession, organization_id: uuid.UUID
) -> list[tuple[Membership, User]]:
    """An organization's memberships with their users, by email."""
    rows = await session.execute(
        select(Membership, User)
        .join(User, User.id == Membership.user_id)
        .where(Membership.organization_id == organization_id)
        .order_by(User.email)
    )
    return [(membership, user) for membership, user in rows]


async def pending_invites(session: AsyncSession, organization_id: uuid.UUID) -> list[Invite]:
    """An organization's invites not yet accepted, newest first."""
    rows = await session.scalars(
        select(Invite)
        .where(Invite.organization_id == organization_id, Invite.accepted_at.is_(None))
        .order_by(Invite.created_at.desc())
    )
    return list(rows)


async def target_roots(session: AsyncSession, workspace_id: uuid.UUID) -> list[TargetRoot]:
    """A workspace's named target roots, by name."""
    rows = await session.scalars(
        select(TargetRoot).where(TargetRoot.workspace_id == workspace_id).order_by(TargetRoot.name)
    )
    return list(rows)


async def api_keys(session: AsyncSession, workspace_id: uuid.UUID) -> list[ApiKey]:
    """A workspace's API keys (hash and prefix only), newest first."""
    rows = await session.scalars(
        select(ApiKey).where(ApiKey.workspace_id == workspace_id).order_by(ApiKey.created_at.desc())
    )
    return list(rows)
