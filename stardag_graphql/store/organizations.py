"""Organizations and what their owners and admins manage: members, invites, workspaces and
target roots.

An organization always keeps at least one owner. Changes to memberships first lock the
organization's row (an UPDATE, which also serialises SQLite writers), then re-read the
roles, so two owners removing each other at the same moment leave one owner, not none.
"""

import re
import uuid
from datetime import timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from stardag_graphql.errors import ForbiddenError, InvalidInputError, NotFoundError
from stardag_graphql.models import (
    Invite,
    Membership,
    Organization,
    Role,
    TargetRoot,
    User,
    Workspace,
    utcnow,
)
from stardag_graphql.permissions import Action, allowed

SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
TARGET_ROOT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s]+")
MAX_NAME_LENGTH = 200
MAX_URI_LENGTH = 2000
INVITE_LIFETIME = timedelta(days=14)
DEFAULT_WORKSPACE_SLUG = "default"
RANK = {Role.MEMBER: 0, Role.ADMIN: 1, Role.OWNER: 2}


def check_slug(slug: str, what: str) -> str:
    """`slug` if it is a valid slug; `InvalidInputError` saying what a slug may be."""
    if not SLUG.fullmatch(slug):
        raise InvalidInputError(
            f"{what} slug {slug!r} is not valid: use 1 to 63 lowercase letters, digits and "
            "dashes, starting with a letter or digit"
        )
    return slug


def check_name(name: str, what: str) -> str:
    """`name` stripped, if it is 1 to 200 characters long."""
    name = name.strip()
    if not 1 <= len(name) <= MAX_NAME_LENGTH:
        raise InvalidInputError(f"{what} name must be 1 to {MAX_NAME_LENGTH} characters")
    return name


def normal_email(email: str) -> str:
    """`email` lowercased, if it looks like an address."""
    email = email.strip().lower()
    if len(email) > 320 or not EMAIL.fullmatch(email):
        raise InvalidInputError(f"{email!r} is not an email address")
    return email


async def create_organization(
    session: AsyncSession, owner_id: uuid.UUID, slug: str, name: str
) -> Organization:
    """A new organization owned by `owner_id`, with a `default` workspace."""
    organization = Organization(
        id=uuid.uuid4(),
        slug=check_slug(slug, "organization"),
        name=check_name(name, "organization"),
        created_at=utcnow(),
    )
    session.add(organization)
    try:
        await session.flush()
    except IntegrityError:
        raise InvalidInputError(
            f"the organization slug {slug!r} is taken: choose another"
        ) from None
    session.add(Membership(organization_id=organization.id, user_id=owner_id, role=Role.OWNER))
    session.add(
        Workspace(
            organization_id=organization.id,
            slug=DEFAULT_WORKSPACE_SLUG,
            name="Default",
            created_at=utcnow(),
        )
    )
    await session.flush()
    return organization


async def lock_organization(session: AsyncSession, organization_id: uuid.UUID) -> None:
    """Hold the organization's row until the transaction ends: membership changes queue here."""
    await session.execute(
        update(Organization)
        .where(Organization.id == organization_id)
        .values(name=Organization.name)
        .execution_options(synchronize_session=False)
    )


async def role_of(
    session: AsyncSession, organization_id: uuid.UUID, user_id: uuid.UUID
) -> Role | None:
    """The user's role in the organization as of now, or None if they are not a member."""
    return await session.scalar(
        select(Membership.role).where(
            Membership.organization_id == organization_id, Membership.user_id == user_id
        )
    )


async def _member(
    session: AsyncSession, organization_id: uuid.UUID, email: str
) -> tuple[Membership, User]:
    row = (
        await session.execute(
            select(Membership, User)
            .join(User, User.id == Membership.user_id)
            .where(Membership.organization_id == organization_id, User.email == normal_email(email))
        )
    ).first()
    if row is None:
        raise NotFoundError(f"{email!r} is not a member of this organization")
    return row[0], row[1]


async def _owners(session: AsyncSession, organization_id: uuid.UUID) -> int:
    count = await session.scalar(
        select(func.count()).where(
            Membership.organization_id == organization_id, Membership.role == Role.OWNER
        )
    )
    return count or 0


def _check_actor(actor_role: Role | None, *roles: Role) -> None:
    """Re-check, under the lock, that the actor may change members with these roles."""
    if actor_role is None:
        raise NotFoundError("no such organization among yours")
    action = Action.MANAGE_OWNERS if Role.OWNER in roles else Action.MANAGE_MEMBERS
    if not allowed(actor_role, action):
        raise ForbiddenError(
            f"your role ({actor_role}) may not {action.value.replace('_', ' ')} in this "
            "organization: ask one of its owners"
        )


async def set_member_role(
    session: AsyncSession,
    organization_id: uuid.UUID,
    actor_id: uuid.UUID,
    email: str,
    role: Role,
) -> Membership:
    """Give the member with `email` the role `role`.

    Nobody raises their own role, changing an owner or making one needs an owner, and the
    last owner cannot step down.
    """
    await lock_organization(session, organization_id)
    actor_role = await role_of(session, organization_id, actor_id)
    membership, _user = await _member(session, organization_id, email)
    _check_actor(actor_role, membership.role, role)
    if membership.user_id == actor_id and RANK[role] > RANK[membership.role]:
        raise ForbiddenError("nobody raises their own role: ask another owner")
    if (
        membership.role is Role.OWNER
        and role is not Role.OWNER
        and await _owners(session, organization_id) == 1
    ):
        raise InvalidInputError(
            "an organization keeps at least one owner: make someone else owner first"
        )
    membership.role = role
    await session.flush()
    return membership


async def remove_member(
    session: AsyncSession, organization_id: uuid.UUID, actor_id: uuid.UUID, email: str
) -> None:
    """Remove the member with `email`; removing an owner needs an owner, and never the last."""
    await lock_organization(session, organization_id)
    actor_role = await role_of(session, organization_id, actor_id)
    membership, _user = await _member(session, organization_id, email)
    _check_actor(actor_role, membership.role)
    if membership.role is Role.OWNER and await _owners(session, organization_id) == 1:
        raise InvalidInputError(
            "an organization keeps at least one owner: make someone else owner first"
        )
    await session.delete(membership)
    await session.flush()


async def invite_member(
    session: AsyncSession,
    organization_id: uuid.UUID,
    invited_by: uuid.UUID,
    email: str,
    role: Role,
) -> Invite:
    """Invite `email` with `role`; a pending invite to the same address is renewed."""
    email = normal_email(email)
    member = await session.scalar(
        select(Membership.id)
        .join(User, User.id == Membership.user_id)
        .where(Membership.organization_id == organization_id, User.email == email)
    )
    if member is not None:
        raise InvalidInputError(f"{email!r} is already a member: change their role instead")
    now = utcnow()
    invite = await session.scalar(
        select(Invite).where(
            Invite.organization_id == organization_id,
            Invite.email == email,
            Invite.accepted_at.is_(None),
        )
    )
    if invite is None:
        invite = Invite(organization_id=organization_id, email=email, created_at=now)
        session.add(invite)
    invite.role = role
    invite.invited_by_id = invited_by
    invite.expires_at = now + INVITE_LIFETIME
    await session.flush()
    return invite


async def pending_invite(
    session: AsyncSession,
    invite_id: uuid.UUID,
    *,
    organization_id: uuid.UUID | None = None,
    email: str | None = None,
) -> Invite:
    """The pending, unexpired invite `invite_id` of the organization or to the address given;
    `NotFoundError` for any other."""
    statement = select(Invite).where(
        Invite.id == invite_id, Invite.accepted_at.is_(None), Invite.expires_at > utcnow()
    )
    if organization_id is not None:
        statement = statement.where(Invite.organization_id == organization_id)
    if email is not None:
        statement = statement.where(Invite.email == email.lower())
    invite = await session.scalar(statement)
    if invite is None:
        raise NotFoundError("no such pending invite: it may have expired, been revoked or used")
    return invite


async def revoke_invite(session: AsyncSession, invite: Invite) -> None:
    """Withdraw a pending invite."""
    await session.delete(invite)
    await session.flush()


async def invites_to(session: AsyncSession, user: User) -> list[Invite]:
    """The pending, unexpired invites to the user's address, if the address is verified."""
    if not user.email_verified:
        return []
    rows = await session.scalars(
        select(Invite)
        .where(
            Invite.email == user.email.lower(),
            Invite.accepted_at.is_(None),
            Invite.expires_at > utcnow(),
        )
        .order_by(Invite.created_at.desc())
    )
    return list(rows)


async def accept_invite(session: AsyncSession, user: User, invite_id: uuid.UUID) -> Organization:
    """Join the organization of an invite to the user's verified address, with its role."""
    if not user.email_verified:
        raise ForbiddenError(
            f"your email {user.email!r} is not verified by your identity provider, so no "
            "invite can be accepted with it: verify it there and sign in again"
        )
    invite = await pending_invite(session, invite_id, email=user.email)
    await lock_organization(session, invite.organization_id)
    if await role_of(session, invite.organization_id, user.id) is None:
        session.add(
            Membership(organization_id=invite.organization_id, user_id=user.id, role=invite.role)
        )
    invite.accepted_at = utcnow()
    await session.flush()
    organization = await session.get(Organization, invite.organization_id)
    assert organization is not None
    return organization


async def decline_invite(session: AsyncSession, user: User, invite_id: uuid.UUID) -> None:
    """Refuse an invite to the user's address."""
    await revoke_invite(session, await pending_invite(session, invite_id, email=user.email))


async def create_workspace(
    session: AsyncSession, organization_id: uuid.UUID, slug: str, name: str
) -> Workspace:
    """A new workspace in the organization."""
    workspace = Workspace(
        organization_id=organization_id,
        slug=check_slug(slug, "workspace"),
        name=check_name(name, "workspace"),
        created_at=utcnow(),
    )
    session.add(workspace)
    try:
        await session.flush()
    except IntegrityError:
        raise InvalidInputError(
            f"the organization already has a workspace {slug!r}: choose another slug"
        ) from None
    return workspace


async def set_archived(session: AsyncSession, workspace_id: uuid.UUID, archived: bool) -> Workspace:
    """Archive a workspace (it stays readable, nothing is written to it) or restore it."""
    workspace = await session.get(Workspace, workspace_id)
    if workspace is None:
        raise NotFoundError("no such workspace")
    if archived and workspace.archived_at is None:
        workspace.archived_at = utcnow()
    elif not archived:
        workspace.archived_at = None
    await session.flush()
    return workspace


async def rename_workspace(session: AsyncSession, workspace_id: uuid.UUID, name: str) -> Workspace:
    """Give the workspace a new display name (its slug, which configuration names, stays)."""
    workspace = await session.get(Workspace, workspace_id)
    if workspace is None:
        raise NotFoundError("no such workspace")
    workspace.name = check_name(name, "workspace")
    await session.flush()
    return workspace


async def set_target_root(
    session: AsyncSession, workspace_id: uuid.UUID, name: str, uri: str
) -> TargetRoot:
    """Point the workspace's target root `name` at `uri` (an fsspec URL), creating it if new."""
    if not TARGET_ROOT_NAME.fullmatch(name):
        raise InvalidInputError(
            f"target root name {name!r} is not valid: use 1 to 64 letters, digits, '_', '.' and '-'"
        )
    uri = uri.strip()
    if not 1 <= len(uri) <= MAX_URI_LENGTH or any(c.isspace() for c in uri):
        raise InvalidInputError(
            f"target root URI {uri!r} is not valid: give an fsspec URL such as "
            "s3://bucket/prefix or an absolute path"
        )
    root = await session.scalar(
        select(TargetRoot).where(TargetRoot.workspace_id == workspace_id, TargetRoot.name == name)
    )
    if root is None:
        root = TargetRoot(workspace_id=workspace_id, name=name, created_at=utcnow())
        session.add(root)
    root.uri = uri
    await session.flush()
    return root


async def remove_target_root(session: AsyncSession, workspace_id: uuid.UUID, name: str) -> None:
    """Remove the workspace's target root `name`."""
    result = await session.execute(
        delete(TargetRoot).where(TargetRoot.workspace_id == workspace_id, TargetRoot.name == name)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        raise NotFoundError(f"the workspace has no target root {name!r}")
