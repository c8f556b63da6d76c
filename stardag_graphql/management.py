"""The mutations that manage organizations: workspaces, target roots, API keys, members and
invites, and the ones a signed-in person makes for themselves.

Each takes its action from the permission table (`permissions.OPERATIONS`); a change that
involves an owner also needs `manage_owners`, checked again under the organization's lock.
"""

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import strawberry
from sqlalchemy.ext.asyncio import AsyncSession
from strawberry.relay import GlobalID

from stardag_graphql import models
from stardag_graphql.errors import NotFoundError
from stardag_graphql.ids import row_id
from stardag_graphql.mutations import retrying_conflicts, writing
from stardag_graphql.permissions import Action, operation_action
from stardag_graphql.store import apikeys as apikey_store
from stardag_graphql.store import organizations as organization_store
from stardag_graphql.types import (
    ApiKey,
    Info,
    Invite,
    Member,
    OrganizationSummary,
    TargetRoot,
    User,
    Workspace,
)


@strawberry.type(description="A new API key: `secret` is shown this once and never again.")
class CreatedApiKey:
    api_key: ApiKey
    secret: str


@strawberry.type
class ManagementMutation:
    @strawberry.mutation(
        description="Create an organization, owned by the caller, with a `default` workspace; "
        "sign in to it to act there (registry tokens are scoped to one organization)."
    )
    async def create_organization(self, info: Info, slug: str, name: str) -> OrganizationSummary:
        user = info.context.require_signed_in()
        async with info.context.transaction() as session:
            row = await organization_store.create_organization(session, user, slug, name)
        return OrganizationSummary(slug=row.slug, name=row.name)

    @strawberry.mutation(description="Create a workspace in the organization.")
    async def create_workspace(
        self, info: Info, organization_id: GlobalID, slug: str, name: str
    ) -> Workspace:
        async with _managing(info, organization_id) as (session, organization):
            row = await organization_store.create_workspace(session, organization, slug, name)
        return Workspace.from_row(row)

    @strawberry.mutation(
        description="Archive a workspace: it stays readable; builds can no longer write to it."
    )
    async def archive_workspace(self, info: Info, workspace_id: GlobalID) -> Workspace:
        async with writing(info, workspace_id) as (session, workspace):
            row = await organization_store.set_archived(session, workspace, archived=True)
        return Workspace.from_row(row)

    @strawberry.mutation(
        description="Rename a workspace; its slug, which configuration and workers use, stays."
    )
    async def rename_workspace(self, info: Info, workspace_id: GlobalID, name: str) -> Workspace:
        async with writing(info, workspace_id) as (session, workspace):
            row = await organization_store.rename_workspace(session, workspace, name)
        return Workspace.from_row(row)

    @strawberry.mutation(description="Restore an archived workspace.")
    async def restore_workspace(self, info: Info, workspace_id: GlobalID) -> Workspace:
        async with writing(info, workspace_id) as (session, workspace):
            row = await organization_store.set_archived(session, workspace, archived=False)
        return Workspace.from_row(row)

    @strawberry.mutation(
        description="Point a named target root of the workspace at an fsspec "
        "URL, creating it if new."
    )
    async def set_target_root(
        self, info: Info, workspace_id: GlobalID, name: str, uri: str
    ) -> TargetRoot:
        async with writing(info, workspace_id) as (session, workspace):
            row = await organization_store.set_target_root(session, workspace, name, uri)
        return TargetRoot(name=row.name, uri=row.uri)

    @strawberry.mutation(description="Remove a named target root of the workspace.")
    async def remove_target_root(self, info: Info, workspace_id: GlobalID, name: str) -> bool:
        async with writing(info, workspace_id) as (session, workspace):
            await organization_store.remove_target_root(session, workspace, name)
        return True

    @strawberry.mutation(description="Create a workspace API key (for CI and workers).")
    async def create_api_key(self, info: Info, workspace_id: GlobalID, name: str) -> CreatedApiKey:
        async with writing(info, workspace_id) as (session, workspace):
            created = await apikey_store.create_api_key(
                session, workspace, name, info.context.identity.user_id
            )
        return CreatedApiKey(api_key=ApiKey.from_row(created.row), secret=created.secret)

    @strawberry.mutation(description="Revoke an API key by its prefix; it stops working at once.")
    async def revoke_api_key(self, info: Info, workspace_id: GlobalID, prefix: str) -> ApiKey:
        async with writing(info, workspace_id) as (session, workspace):
            row = await apikey_store.revoke_api_key(session, workspace, prefix)
        return ApiKey.from_row(row)

    @strawberry.mutation(
        description="Invite someone by email; they join when they accept, "
        "signed in with that (verified) address."
    )
    async def invite_member(
        self, info: Info, organization_id: GlobalID, email: str, role: models.Role
    ) -> Invite:
        async with _managing(info, organization_id, role) as (session, organization):
            row = await organization_store.invite_member(
                session, organization, info.context.require_signed_in(), email, role
            )
        return Invite.from_row(row)

    @strawberry.mutation(description="Withdraw a pending invite.")
    async def revoke_invite(self, info: Info, invite_id: GlobalID) -> bool:
        invite = await _invite(info, invite_id)
        async with _managing(info, invite.organization_pk, invite.role) as (session, _):
            row = await organization_store.pending_invite(
                session, invite.row_pk, organization_id=invite.organization_pk
            )
            await organization_store.revoke_invite(session, row)
        return True

    @strawberry.mutation(
        description="Accept an invite to your verified email; sign in to the "
        "organization afterwards to act in it."
    )
    async def accept_invite(self, info: Info, invite_id: GlobalID) -> OrganizationSummary:
        user = await _signed_in_user(info)
        async with info.context.transaction() as session:
            row = await organization_store.accept_invite(session, user, row_id(invite_id, "Invite"))
        return OrganizationSummary(slug=row.slug, name=row.name)

    @strawberry.mutation(description="Decline an invite to your email.")
    async def decline_invite(self, info: Info, invite_id: GlobalID) -> bool:
        user = await _signed_in_user(info)
        async with info.context.transaction() as session:
            await organization_store.decline_invite(session, user, row_id(invite_id, "Invite"))
        return True

    @strawberry.mutation(
        description="Change a member's role. Nobody raises their own role; "
        "an organization keeps at least one owner."
    )
    async def set_member_role(
        self, info: Info, organization_id: GlobalID, email: str, role: models.Role
    ) -> Member:
        async with _managing(info, organization_id) as (session, organization):
            membership = await organization_store.set_member_role(
                session, organization, info.context.require_signed_in(), email, role
            )
            user = await session.get(models.User, membership.user_id)
        assert user is not None
        return Member(
            user=User.from_row(user), role=membership.role, joined_at=membership.created_at
        )

    @strawberry.mutation(
        description="Remove a member; their next request no longer reaches "
        "the organization. An organization keeps at least one owner."
    )
    async def remove_member(self, info: Info, organization_id: GlobalID, email: str) -> bool:
        async with _managing(info, organization_id) as (session, organization):
            await organization_store.remove_member(
                session, organization, info.context.require_signed_in(), email
            )
        return True


retrying_conflicts(ManagementMutation)


@asynccontextmanager
async def _managing(
    info: Info, organization: GlobalID | uuid.UUID, role: models.Role | None = None
) -> AsyncIterator[tuple[AsyncSession, uuid.UUID]]:
    """A session on the caller's organization, if the permission table lets them make this
    mutation there (and manage owners, when `role` is owner), that commits at the end."""
    pk = (
        organization
        if isinstance(organization, uuid.UUID)
        else row_id(organization, "Organization")
    )
    info.context.require_in_organization(pk, operation_action("Mutation", info.field_name))
    if role is models.Role.OWNER:
        info.context.require_in_organization(pk, Action.MANAGE_OWNERS)
    async with info.context.transaction() as session:
        yield session, pk


async def _invite(info: Info, invite_id: GlobalID) -> Invite:
    """The invite `invite_id` if it is to one of the caller's organizations: whether they may
    manage it is the permission table's answer."""
    row = await info.context.loaders.invites.load(row_id(invite_id, "Invite"))
    if row is None or row.organization_id not in info.context.identity.roles:
        raise NotFoundError(f"no invite {invite_id}: list them with `organization {{ invites }}`")
    return Invite.from_row(row)


async def _signed_in_user(info: Info) -> models.User:
    user = await info.context.loaders.users.load(info.context.require_signed_in())
    if user is None:
        raise NotFoundError("your account no longer exists: sign in again")
    return user
