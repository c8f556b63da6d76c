"""What every resolver gets: the caller, database sessions and per-request DataLoaders.

Each DataLoader batches the lookups of one request into one query per kind, and opens its
own read session, since one `AsyncSession` cannot run concurrent queries.
"""

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from strawberry.dataloader import DataLoader

from stardag_graphql import models
from stardag_graphql.database import transaction
from stardag_graphql.errors import (
    CredentialError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
)
from stardag_graphql.notify import Notifier
from stardag_graphql.permissions import Action, allowed
from stardag_graphql.store.assets import assets_of
from stardag_graphql.store.rows import rows_by_id
from stardag_graphql.store.tasks import dependencies, dependents
from stardag_graphql.store.tenancy import Identity, Reach, workspace_ids

V = TypeVar("V")
M = TypeVar("M", bound=models.Base)


@dataclass
class Loaders:
    """DataLoaders of one request, keyed by row id."""

    tasks: DataLoader[uuid.UUID, models.Task | None]
    builds: DataLoader[uuid.UUID, models.Build | None]
    users: DataLoader[uuid.UUID, models.User | None]
    workspaces: DataLoader[uuid.UUID, models.Workspace | None]
    organizations: DataLoader[uuid.UUID, models.Organization | None]
    invites: DataLoader[uuid.UUID, models.Invite | None]
    dependencies: DataLoader[uuid.UUID, list[models.Task]]
    dependents: DataLoader[uuid.UUID, list[models.Task]]
    assets: DataLoader[uuid.UUID, list[models.Asset]]


@dataclass
class Context:
    """The per-request context: the caller's identity, a session factory and the loaders."""

    sessions: async_sessionmaker[AsyncSession]
    identity: Identity
    notifier: Notifier
    request_id: str
    reidentify: Callable[[], Awaitable[Identity]] | None = None
    read_sessions: async_sessionmaker[AsyncSession] | None = None
    write_gate: AbstractAsyncContextManager[Any] = field(default_factory=nullcontext)
    loaders: Loaders = field(init=False)
    _workspaces: dict[uuid.UUID, Reach] | None = field(init=False, default=None)

    def reads(self) -> AsyncSession:
        """A session for reads: `read_sessions` when given (on PostgreSQL they run outside a
        transaction, which saves BEGIN and ROLLBACK round trips), else one of `sessions`."""
        return (self.read_sessions or self.sessions)()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction that commits at the end (rolls back on an error),
        once the write gate lets it in (see `create_write_gate`)."""
        async with transaction(self.sessions, self.write_gate) as session:
            yield session

    async def workspace_ids(self) -> Mapping[uuid.UUID, Reach]:
        """The workspaces the caller reaches, each with its organization (read once a request:
        with the identity, when it was read with them)."""
        if self.identity.workspaces is not None:
            return self.identity.workspaces
        if self._workspaces is None:
            async with self.reads() as session:
                self._workspaces = await workspace_ids(session, self.identity)
        return self._workspaces

    async def require(self, workspace_id: uuid.UUID, action: Action) -> None:
        """Refuse `action` in a workspace the caller reaches unless the permission table allows
        it them; no build writes to an archived workspace."""
        reach = (await self.workspace_ids())[workspace_id]
        self.require_in_organization(reach.organization_id, action)
        if reach.archived and action is Action.WRITE:
            raise InvalidInputError(
                "the workspace is archived, so nothing can be changed in it: "
                "restore it with restoreWorkspace, or use another workspace"
            )

    async def still_reaches(self, workspace_id: uuid.UUID) -> None:
        """Refuse, as if it were missing, a workspace the caller no longer reaches (their key
        was revoked, their membership removed, their token expired): long subscriptions
        check this as they go."""
        if self.reidentify is None:
            return
        try:
            identity = await self.reidentify()
        except CredentialError as error:
            raise CredentialError(f"{error} (the subscription ended)") from None
        reached = identity.workspaces
        if reached is None:
            async with self.reads() as session:
                reached = await workspace_ids(session, identity)
        if workspace_id not in reached:
            raise NotFoundError("the workspace is no longer among yours: the subscription ended")

    def require_in_organization(self, organization_id: uuid.UUID, action: Action) -> None:
        """Refuse `action` in the organization unless the permission table allows it the
        caller; an organization the caller is not in answers as a missing one."""
        if organization_id not in self.identity.roles:
            raise NotFoundError("no such organization among yours")
        role = self.identity.roles[organization_id]
        api_key = self.identity.api_key_workspace is not None
        if not allowed(role, action, api_key=api_key):
            who = "an API key" if api_key else f"your role ({role})"
            raise ForbiddenError(
                f"{who} may not {action.value.replace('_', ' ')} in this organization: "
                "ask one of its owners or admins"
            )

    def require_signed_in(self) -> uuid.UUID:
        """The caller's user id; refused for an API key and for an anonymous caller."""
        if self.identity.api_key_workspace is not None or self.identity.user_id is None:
            raise ForbiddenError(
                "only a signed-in person may do this, not an API key: "
                "sign in with `stardag auth login`"
            )
        return self.identity.user_id

    def __post_init__(self) -> None:
        sessions = self.read_sessions or self.sessions

        def batched(
            fetch: Callable[[AsyncSession, Sequence[uuid.UUID]], Awaitable[Mapping[uuid.UUID, V]]],
            default: V,
        ) -> DataLoader[uuid.UUID, V]:
            async def load(keys: Sequence[uuid.UUID]) -> list[V]:
                async with sessions() as session:
                    found = await fetch(session, keys)
                return [found.get(key, default) for key in keys]

            return DataLoader(load_fn=load)

        def by_id(model: type[M]) -> DataLoader[uuid.UUID, M | None]:
            async def fetch(
                session: AsyncSession, keys: Sequence[uuid.UUID]
            ) -> dict[uuid.UUID, M | None]:
                return dict(await rows_by_id(session, model, keys))

            return batched(fetch, None)

        self.loaders = Loaders(
            tasks=by_id(models.Task),
            builds=by_id(models.Build),
            users=by_id(models.User),
            workspaces=by_id(models.Workspace),
            organizations=by_id(models.Organization),
            invites=by_id(models.Invite),
            dependencies=batched(dependencies, []),
            dependents=batched(dependents, []),
            assets=batched(assets_of, []),
        )
