"""The GraphQL object types: thin views of the store's rows, with resolvers for relations.

A type is built from its row with `from_row`; relations resolve through the request's
DataLoaders or the store, never through lazy ORM attributes. Every object is reached through
the caller's organizations, and `node(id)` checks that too: a foreign id reads as missing.
"""

import enum
import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, Self, TypeVar

import strawberry
from strawberry.dataloader import DataLoader
from strawberry.permission import BasePermission
from strawberry.relay import GlobalID, Node, NodeID
from strawberry.scalars import JSON

from stardag_graphql import models
from stardag_graphql.context import Context
from stardag_graphql.errors import InvalidInputError
from stardag_graphql.ids import row_id
from stardag_graphql.permissions import Action, allowed, operation_action
from stardag_graphql.store import builds as build_store
from stardag_graphql.store import events as event_store
from stardag_graphql.store import lineage as lineage_store
from stardag_graphql.store import locks as lock_store
from stardag_graphql.store import logs as log_store
from stardag_graphql.store import organizations as organization_store
from stardag_graphql.store import search as task_search
from stardag_graphql.store import tasks as task_store
from stardag_graphql.store import tenancy
from stardag_graphql.store.pages import Page

Info = strawberry.Info[Context, None]
T = TypeVar("T")
R = TypeVar("R")

# Forward references to the types defined further down this module.
LAZY = strawberry.lazy("stardag_graphql.types")

DEFAULT_PAGE_SIZE = 20
DEFAULT_MAX_NODES = 1000

# The models' enumerations are the API's: registered here, used as they are.
strawberry.enum(models.Role, description="A member's role in an organization.")
strawberry.enum(models.BuildStatus, description="Where a build is in its life.")
strawberry.enum(models.TaskStatus, description="A task's status, from its latest event.")
strawberry.enum(models.EventKind, description="What an event reports.")
strawberry.enum(models.AssetKind, description="The format of an asset.")


def _parse_datetime(value: object) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"expected an ISO 8601 date and time, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{value!r} is not an ISO 8601 date and time, e.g. 2026-11-22T10:30:00Z"
        ) from None
    if parsed.tzinfo is None:
        raise ValueError(f"{value!r} has no timezone: add one, e.g. {value}Z for UTC")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{value!r} is out of range once converted to UTC") from None


UTCDateTimeScalar = strawberry.scalar(
    name="DateTime",
    description="An ISO 8601 date and time with a timezone; answers are in UTC.",
    serialize=lambda value: value.isoformat(),
    parse_value=_parse_datetime,
)


@strawberry.type(description="Where a page of a connection ends, and whether more follow.")
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type(description="A node of a connection with the cursor that continues after it.")
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type(description="A page of a list: edges, page info, and the total on request.")
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo
    count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description="The nodes of this page (the edges without cursors).")
    def nodes(self) -> list[T]:
        return [edge.node for edge in self.edges]

    @strawberry.field(description="How many items the whole list holds (one more query).")
    async def total_count(self) -> int:
        return await self.count()


def connection(
    page: Page[R],
    cursor: Callable[[R], str],
    node: Callable[[R], T],
    count: Callable[[], Awaitable[int]],
    after: str | None,
) -> Connection[T]:
    """A connection of the rows of `page`."""
    edges = [Edge(cursor=cursor(row), node=node(row)) for row in page.rows]
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=page.has_next,
            has_previous_page=after is not None,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
        count=count,
    )


class Allowed(BasePermission):
    """The caller may do, in the organization of the object, the action that the permission
    table gives this field; a `ForbiddenError` says why not."""

    async def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        action = operation_action(info.path.typename or "", info.field_name)
        info.context.require_in_organization(source.organization_pk, action)
        return True


GUARDED: list[type[BasePermission]] = [Allowed]
"""The permission classes of a field whose action the permission table names."""


@strawberry.type(description="A person.")
class User:
    email: str
    display_name: str

    @classmethod
    def from_row(cls, row: models.User) -> Self:
        return cls(email=row.email, display_name=row.display_name)


@strawberry.type(description="A user's membership of an organization.")
class Member:
    user: User
    role: models.Role
    joined_at: datetime


@strawberry.type(description="An invitation to an organization, not yet accepted.")
class Invite(Node):
    pk: NodeID[str]
    email: str
    role: models.Role
    created_at: datetime
    expires_at: datetime
    organization_pk: strawberry.Private[uuid.UUID]

    @classmethod
    def from_row(cls, row: models.Invite) -> Self:
        return cls(
            pk=str(row.id),
            email=row.email,
            role=row.role,
            created_at=row.created_at,
            expires_at=row.expires_at,
            organization_pk=row.organization_id,
        )

    @property
    def row_pk(self) -> uuid.UUID:
        """The invite's row id."""
        return uuid.UUID(self.pk)

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Self | None]:
        """Invites of organizations where the caller manages members, and those to them."""
        identity = info.context.identity
        viewer = await _viewer_row(info)

        def visible(row: models.Invite) -> bool:
            if viewer is not None and viewer.email_verified and row.email == viewer.email:
                return True
            role = identity.roles.get(row.organization_id)
            return identity.api_key_workspace is None and allowed(role, Action.MANAGE_MEMBERS)

        rows = await _visible_rows(info.context.loaders.invites, node_ids, visible)
        return [cls.from_row(row) if row else None for row in rows]

    @strawberry.field(description="The organization the invite is to, by slug and name.")
    async def organization(self, info: Info) -> "OrganizationSummary":
        row = await info.context.loaders.organizations.load(self.organization_pk)
        assert row is not None
        return OrganizationSummary(slug=row.slug, name=row.name)


@strawberry.type(description="An organization by name only, as an invitee or a member sees it.")
class OrganizationSummary:
    slug: str
    name: str


@strawberry.type(description="One of the caller's memberships, in any organization.")
class Membership:
    organization: OrganizationSummary
    role: models.Role


@strawberry.type(description="The signed-in person: their organizations and pending invites.")
class Viewer:
    email: str
    email_verified: bool
    display_name: str
    row: strawberry.Private[models.User]

    @strawberry.field(description="Every organization the caller belongs to, with their role.")
    async def memberships(self, info: Info) -> list[Membership]:
        async with info.context.reads() as session:
            rows = await tenancy.memberships_of(session, self.row.id)
        return [
            Membership(
                organization=OrganizationSummary(slug=organization.slug, name=organization.name),
                role=membership.role,
            )
            for membership, organization in rows
        ]

    @strawberry.field(description="Invites to the caller's verified email, newest first.")
    async def invites(self, info: Info) -> list[Invite]:
        async with info.context.reads() as session:
            rows = await organization_store.invites_to(session, self.row)
        return [Invite.from_row(row) for row in rows]


async def _viewer_row(info: Info) -> models.User | None:
    """The signed-in person's row; None for an API key or an anonymous caller."""
    identity = info.context.identity
    if identity.user_id is None or identity.api_key_workspace is not None:
        return None
    return await info.context.loaders.users.load(identity.user_id)


async def viewer(info: Info) -> Viewer | None:
    """The signed-in caller as a `Viewer`."""
    row = await _viewer_row(info)
    if row is None:
        return None
    return Viewer(
        email=row.email, email_verified=row.email_verified, display_name=row.display_name, row=row
    )


@strawberry.type(description="A named root (an fsspec URL) that a workspace's outputs live under.")
class TargetRoot:
    name: str
    uri: str


@strawberry.type(description="A workspace API key; the secret itself is never stored or shown.")
class ApiKey:
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def from_row(cls, row: models.ApiKey) -> Self:
        return cls(
            name=row.name,
            prefix=row.prefix,
            created_at=row.created_at,
            last_used_at=row.last_used_at,
            revoked_at=row.revoked_at,
        )


@strawberry.type(description="A build lock: `holder` holds `key` until `expiresAt`.")
class Lock:
    key: str
    holder: str
    fencing_token: int
    expires_at: datetime


@strawberry.type(description="A markdown or JSON document attached to a task.")
class Asset:
    name: str
    kind: models.AssetKind
    body: str | None = strawberry.field(description="The markdown text of a markdown asset.")
    data: JSON | None = strawberry.field(description="The object of a JSON asset.")
    created_at: datetime

    @classmethod
    def from_row(cls, row: models.Asset) -> Self:
        return cls(
            name=row.name,
            kind=row.kind,
            body=row.body,
            data=JSON(row.data) if row.data is not None else None,
            created_at=row.created_at,
        )


@strawberry.type(description="A line of a task's log; `seq` numbers the task's lines.")
class LogLine:
    seq: int
    stream: str
    text: str
    logged_at: datetime


@strawberry.type(description="Something that happened to a build or a task.")
class Event:
    event_id: str
    kind: models.EventKind
    occurred_at: datetime
    recorded_at: datetime
    payload: JSON
    task_id: str | None = strawberry.field(
        description="The stardag id of the task it happened to (none for a build's own "
        "events); cheaper than `task` when only the id is needed."
    )
    task_pk: strawberry.Private[uuid.UUID | None]
    build_pk: strawberry.Private[uuid.UUID | None]

    @classmethod
    def from_row(cls, row: models.Event) -> Self:
        return cls(
            event_id=row.event_id,
            kind=row.kind,
            occurred_at=row.occurred_at,
            recorded_at=row.recorded_at,
            payload=JSON(row.payload),
            task_id=row.task_id,
            task_pk=row.task_pk,
            build_pk=row.build_id,
        )

    @strawberry.field(description="The task it happened to, if any.")
    async def task(self, info: Info) -> Annotated["Task", LAZY] | None:
        if self.task_pk is None:
            return None
        row = await info.context.loaders.tasks.load(self.task_pk)
        return Task.from_row(row) if row else None

    @strawberry.field(description="The build it happened in, if any.")
    async def build(self, info: Info) -> Annotated["Build", LAZY] | None:
        if self.build_pk is None:
            return None
        row = await info.context.loaders.builds.load(self.build_pk)
        return Build.from_row(row) if row else None


@strawberry.type(description="A dependency: `downstream` needs `upstream` (both task ids).")
class DependencyEdge:
    upstream: str
    downstream: str


@strawberry.type(description="A task in a lineage, `depth` edges from the task asked about.")
class LineageNode:
    task_id: str
    namespace: str
    name: str
    status: models.TaskStatus
    depth: int
    pk: strawberry.Private[uuid.UUID]

    @strawberry.field(description="The whole task.")
    async def task(self, info: Info) -> Annotated["Task", LAZY]:
        row = await info.context.loaders.tasks.load(self.pk)
        assert row is not None
        return Task.from_row(row)


@strawberry.type(description="A task's whole upstream or downstream, nearest first.")
class Lineage:
    nodes: list[LineageNode]
    edges: list[DependencyEdge]


@strawberry.type(
    description="A lineage larger than `maxNodes`: the nearest `maxNodes` tasks and their edges. "
    "Ask again with a larger `maxNodes` or a `maxDepth`."
)
class TruncatedLineage:
    nodes: list[LineageNode]
    edges: list[DependencyEdge]
    max_nodes: int


LineageResult = Annotated[Lineage | TruncatedLineage, strawberry.union("LineageResult")]


@strawberry.type(description="The tasks of one build and the dependencies among them.")
class BuildGraph:
    nodes: list[Annotated["Task", LAZY]]
    edges: list[DependencyEdge]


@strawberry.type(description="A task, registered once per workspace by its deterministic id.")
class Task(Node):
    pk: NodeID[str]
    task_id: str = strawberry.field(description="The id stardag computes from the parameters.")
    namespace: str
    name: str
    version: str
    parameters: JSON
    output_uri: str | None
    status: models.TaskStatus
    created_at: datetime
    updated_at: datetime
    workspace_pk: strawberry.Private[uuid.UUID]

    @classmethod
    def from_row(cls, row: models.Task) -> Self:
        return cls(
            pk=str(row.id),
            task_id=row.task_id,
            namespace=row.namespace,
            name=row.name,
            version=row.version,
            parameters=JSON(row.parameters),
            output_uri=row.output_uri,
            status=row.status,
            created_at=row.created_at,
            updated_at=row.updated_at,
            workspace_pk=row.workspace_id,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Self | None]:
        visible = await info.context.workspace_ids()
        rows = await _visible_rows(
            info.context.loaders.tasks, node_ids, lambda row: row.workspace_id in visible
        )
        return [cls.from_row(row) if row else None for row in rows]

    @property
    def row_pk(self) -> uuid.UUID:
        """The task's row id."""
        return uuid.UUID(self.pk)

    @strawberry.field(description="The tasks this task needs, by task id.")
    async def dependencies(self, info: Info) -> list["Task"]:
        rows = await info.context.loaders.dependencies.load(self.row_pk)
        return [Task.from_row(row) for row in rows]

    @strawberry.field(description="The tasks that need this task, by task id.")
    async def dependents(self, info: Info) -> list["Task"]:
        rows = await info.context.loaders.dependents.load(self.row_pk)
        return [Task.from_row(row) for row in rows]

    @strawberry.field(description="Everything this task needs, transitively (one query).")
    async def upstream(
        self, info: Info, max_depth: int | None = None, max_nodes: int = DEFAULT_MAX_NODES
    ) -> LineageResult:
        return await self._lineage(info, lineage_store.upstream, max_depth, max_nodes)

    @strawberry.field(description="Everything that needs this task, transitively (one query).")
    async def downstream(
        self, info: Info, max_depth: int | None = None, max_nodes: int = DEFAULT_MAX_NODES
    ) -> LineageResult:
        return await self._lineage(info, lineage_store.downstream, max_depth, max_nodes)

    async def _lineage(
        self,
        info: Info,
        walk: Callable[..., Awaitable[lineage_store.Lineage]],
        max_depth: int | None,
        max_nodes: int,
    ) -> Lineage | TruncatedLineage:
        async with info.context.reads() as session:
            found = await walk(
                session,
                self.workspace_pk,
                self.task_id,
                max_depth=max_depth,
                max_nodes=max_nodes,
                root_pk=self.row_pk,
            )
        nodes = [
            LineageNode(
                task_id=node.task_id,
                namespace=node.namespace,
                name=node.name,
                status=node.status,
                depth=node.depth,
                pk=node.pk,
            )
            for node in found.nodes
        ]
        edges = [DependencyEdge(upstream=up, downstream=down) for up, down in found.edges]
        if found.truncated:
            return TruncatedLineage(nodes=nodes, edges=edges, max_nodes=max_nodes)
        return Lineage(nodes=nodes, edges=edges)

    @strawberry.field(description="The task's events, in the order they occurred.")
    async def events(
        self, info: Info, first: int = DEFAULT_PAGE_SIZE, after: str | None = None
    ) -> Connection[Event]:
        async with info.context.reads() as session:
            page = await event_store.task_events(session, self.row_pk, first, after)

        async def count() -> int:
            async with info.context.reads() as session:
                return await event_store.count_events(session, task_pk=self.row_pk)

        return connection(
            page, event_store.EVENTS_BY_OCCURRENCE.cursor, Event.from_row, count, after
        )

    @strawberry.field(description="The builds this task took part in, newest first.")
    async def builds(
        self, info: Info, first: int = DEFAULT_PAGE_SIZE, after: str | None = None
    ) -> Connection["Build"]:
        async with info.context.reads() as session:
            page = await build_store.find_builds(
                session, self.workspace_pk, (), first, after, task_pk=self.row_pk
            )

        async def count() -> int:
            async with info.context.reads() as session:
                return await build_store.count_builds(
                    session, self.workspace_pk, (), task_pk=self.row_pk
                )

        return connection(
            page, build_store.BUILDS_NEWEST_FIRST.cursor, Build.from_row, count, after
        )

    @strawberry.field(description="The task's assets, by name.")
    async def assets(self, info: Info) -> list[Asset]:
        rows = await info.context.loaders.assets.load(self.row_pk)
        return [Asset.from_row(row) for row in rows]

    @strawberry.field(description="Up to `first` (1 to 1000) log lines after line number `after`.")
    async def logs(self, info: Info, after: int | None = None, first: int = 100) -> list[LogLine]:
        async with info.context.reads() as session:
            rows = await log_store.read_logs(session, self.workspace_pk, self.task_id, after, first)
        return [
            LogLine(seq=row.seq, stream=row.stream, text=row.text, logged_at=row.logged_at)
            for row in rows
        ]


@strawberry.type(description="One run of `build(...)`: who, from which commit, and how it ended.")
class Build(Node):
    pk: NodeID[str]
    name: str
    status: models.BuildStatus
    commit: str | None
    started_at: datetime
    finished_at: datetime | None
    user_pk: strawberry.Private[uuid.UUID | None]
    workspace_pk: strawberry.Private[uuid.UUID]

    @classmethod
    def from_row(cls, row: models.Build) -> Self:
        return cls(
            pk=str(row.id),
            name=row.name,
            status=row.status,
            commit=row.commit,
            started_at=row.started_at,
            finished_at=row.finished_at,
            user_pk=row.user_id,
            workspace_pk=row.workspace_id,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Self | None]:
        visible = await info.context.workspace_ids()
        rows = await _visible_rows(
            info.context.loaders.builds, node_ids, lambda row: row.workspace_id in visible
        )
        return [cls.from_row(row) if row else None for row in rows]

    @property
    def row_pk(self) -> uuid.UUID:
        """The build's row id."""
        return uuid.UUID(self.pk)

    @strawberry.field(description="Who started the build.")
    async def user(self, info: Info) -> User | None:
        if self.user_pk is None:
            return None
        row = await info.context.loaders.users.load(self.user_pk)
        return User.from_row(row) if row else None

    @strawberry.field(description="The tasks the build was asked for.")
    async def root_tasks(self, info: Info) -> list[Task]:
        async with info.context.reads() as session:
            rows = await build_store.root_tasks(session, self.row_pk)
        return [Task.from_row(row) for row in rows]

    @strawberry.field(description="The tasks that took part in the build.")
    async def tasks(
        self,
        info: Info,
        first: int = DEFAULT_PAGE_SIZE,
        after: str | None = None,
        order_by: "TaskOrder | None" = None,
    ) -> Connection[Task]:
        task_filter = task_search.TaskFilter(build_id=self.row_pk)
        return await find_tasks(info, self.workspace_pk, task_filter, order_by, first, after)

    @strawberry.field(description="The build's events, in the order they occurred.")
    async def events(
        self, info: Info, first: int = DEFAULT_PAGE_SIZE, after: str | None = None
    ) -> Connection[Event]:
        async with info.context.reads() as session:
            page = await event_store.build_events(session, self.row_pk, first, after)

        async def count() -> int:
            async with info.context.reads() as session:
                return await event_store.count_events(session, build_id=self.row_pk)

        return connection(
            page, event_store.EVENTS_BY_OCCURRENCE.cursor, Event.from_row, count, after
        )

    @strawberry.field(description="The build's tasks and the dependencies among them.")
    async def graph(self, info: Info) -> BuildGraph:
        async with info.context.reads() as session:
            rows, edges = await build_store.build_graph(session, self.row_pk)
        task_ids = {row.id: row.task_id for row in rows}
        return BuildGraph(
            nodes=[Task.from_row(row) for row in rows],
            edges=[
                DependencyEdge(upstream=task_ids[up], downstream=task_ids[down])
                for up, down in edges
            ],
        )


@strawberry.enum(description="What task lists can be sorted by.")
class TaskOrderField(enum.Enum):
    CREATED_AT = "created_at"
    UPDATED_AT = "updated_at"
    NAME = "name"
    TASK_ID = "task_id"


@strawberry.enum(description="Ascending or descending.")
class OrderDirection(enum.Enum):
    ASC = "asc"
    DESC = "desc"


@strawberry.input(description="How to sort a task list (ties are broken by row id).")
class TaskOrder:
    field: TaskOrderField = TaskOrderField.CREATED_AT
    direction: OrderDirection = OrderDirection.DESC


@strawberry.input(description="A parameter condition: the value at `path` equals `equals`.")
class ParameterCondition:
    path: str = strawberry.field(description="A dotted path into the parameters: 'model.depth'.")
    equals: JSON = strawberry.field(description="A string, number, boolean or null.")


@strawberry.input(description="Conditions on tasks; all given ones must hold.")
class TaskFilter:
    namespace: str | None = None
    names: list[str] | None = None
    statuses: list[models.TaskStatus] | None = None
    build_id: GlobalID | None = None
    parameters: list[ParameterCondition] | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    search: str | None = strawberry.field(
        default=None, description="Part of the name, or the start of the task id."
    )

    def to_store(self) -> task_search.TaskFilter:
        """The store's filter for these conditions."""
        parameters = []
        for condition in self.parameters or ():
            if not isinstance(condition.equals, str | int | float | bool | None):
                raise InvalidInputError(
                    f"parameter condition on {condition.path!r}: equals must be a string, "
                    f"number, boolean or null, got {condition.equals!r}"
                )
            parameters.append(task_search.ParameterFilter(condition.path, condition.equals))
        return task_search.TaskFilter(
            namespace=self.namespace,
            names=self.names or (),
            statuses=self.statuses or (),
            build_id=row_id(self.build_id, "Build") if self.build_id else None,
            parameters=parameters,
            created_after=self.created_after,
            created_before=self.created_before,
            search=self.search,
        )


async def find_tasks(
    info: Info,
    workspace_pk: uuid.UUID,
    task_filter: task_search.TaskFilter,
    order_by: TaskOrder | None,
    first: int,
    after: str | None,
) -> Connection[Task]:
    """A connection of the workspace's tasks that match `task_filter`."""
    order = order_by or TaskOrder()
    ordering = task_search.task_ordering(order.field.value, order.direction is OrderDirection.DESC)
    async with info.context.reads() as session:
        page = await task_search.find_tasks(
            session, workspace_pk, task_filter, ordering, first, after
        )

    async def count() -> int:
        async with info.context.reads() as session:
            return await task_search.count_tasks(session, workspace_pk, task_filter)

    return connection(page, ordering.cursor, Task.from_row, count, after)


@strawberry.input(description="Conditions on builds.")
class BuildFilter:
    statuses: list[models.BuildStatus] | None = None


@strawberry.type(description="A kind of task: the namespace and name its tasks share.")
class TaskFamily:
    namespace: str
    name: str


@strawberry.type(description="Where builds and tasks live.")
class Workspace(Node):
    pk: NodeID[str]
    slug: str
    name: str
    created_at: datetime
    archived_at: datetime | None = strawberry.field(
        description="When the workspace was archived: it stays readable, nothing is written."
    )
    organization_pk: strawberry.Private[uuid.UUID]

    @classmethod
    def from_row(cls, row: models.Workspace) -> Self:
        return cls(
            pk=str(row.id),
            slug=row.slug,
            name=row.name,
            created_at=row.created_at,
            archived_at=row.archived_at,
            organization_pk=row.organization_id,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Self | None]:
        visible = await info.context.workspace_ids()
        rows = await _visible_rows(
            info.context.loaders.workspaces, node_ids, lambda row: row.id in visible
        )
        return [cls.from_row(row) if row else None for row in rows]

    @property
    def row_pk(self) -> uuid.UUID:
        """The workspace's row id."""
        return uuid.UUID(self.pk)

    @strawberry.field(description="The organization the workspace belongs to.")
    async def organization(self, info: Info) -> Annotated["Organization", LAZY]:
        row = await info.context.loaders.organizations.load(self.organization_pk)
        assert row is not None
        return Organization.from_row(row)

    @strawberry.field(description="The named roots the workspace's outputs live under.")
    async def target_roots(self, info: Info) -> list[TargetRoot]:
        async with info.context.reads() as session:
            rows = await tenancy.target_roots(session, self.row_pk)
        return [TargetRoot(name=row.name, uri=row.uri) for row in rows]

    @strawberry.field(
        description="The workspace's API keys (prefixes only).", permission_classes=GUARDED
    )
    async def api_keys(self, info: Info) -> list[ApiKey]:
        async with info.context.reads() as session:
            rows = await tenancy.api_keys(session, self.row_pk)
        return [ApiKey.from_row(row) for row in rows]

    @strawberry.field(description="The workspace's builds, newest first.")
    async def builds(
        self,
        info: Info,
        filter: BuildFilter | None = None,
        first: int = DEFAULT_PAGE_SIZE,
        after: str | None = None,
    ) -> Connection[Build]:
        statuses = (filter.statuses if filter else None) or ()
        async with info.context.reads() as session:
            page = await build_store.find_builds(session, self.row_pk, statuses, first, after)

        async def count() -> int:
            async with info.context.reads() as session:
                return await build_store.count_builds(session, self.row_pk, statuses)

        return connection(
            page, build_store.BUILDS_NEWEST_FIRST.cursor, Build.from_row, count, after
        )

    @strawberry.field(description="One build of the workspace, by id.")
    async def build(self, info: Info, id: GlobalID) -> Build | None:
        row = await info.context.loaders.builds.load(row_id(id, "Build"))
        return Build.from_row(row) if row and row.workspace_id == self.row_pk else None

    @strawberry.field(description="The workspace's tasks that match `filter`.")
    async def tasks(
        self,
        info: Info,
        filter: TaskFilter | None = None,
        order_by: TaskOrder | None = None,
        first: int = DEFAULT_PAGE_SIZE,
        after: str | None = None,
    ) -> Connection[Task]:
        task_filter = filter.to_store() if filter else task_search.TaskFilter()
        return await find_tasks(info, self.row_pk, task_filter, order_by, first, after)

    @strawberry.field(description="A task of the workspace, by its stardag task id.")
    async def task(self, info: Info, task_id: str) -> Task | None:
        async with info.context.reads() as session:
            row = await task_store.task_by_id(session, self.row_pk, task_id)
        return Task.from_row(row) if row else None

    @strawberry.field(description="Locks held now, by key.")
    async def locks(self, info: Info) -> list[Lock]:
        async with info.context.reads() as session:
            rows = await lock_store.list_locks(session, self.row_pk)
        return [
            Lock(
                key=row.key,
                holder=row.holder,
                fencing_token=row.fencing_token,
                expires_at=row.expires_at,
            )
            for row in rows
            if row.holder is not None and row.expires_at is not None
        ]

    @strawberry.field(description="Whether `fencingToken` is the live token of lock `key`.")
    async def fencing_token_valid(self, info: Info, key: str, fencing_token: int) -> bool:
        async with info.context.reads() as session:
            return await lock_store.check_fencing_token(session, self.row_pk, key, fencing_token)

    @strawberry.field(description="Parameter names of matching tasks, for autocomplete.")
    async def filter_keys(
        self, info: Info, filter: TaskFilter | None = None, prefix: str = ""
    ) -> list[str]:
        task_filter = filter.to_store() if filter else task_search.TaskFilter()
        async with info.context.reads() as session:
            return await task_search.filter_keys(session, self.row_pk, task_filter, prefix)

    @strawberry.field(
        description="Task families (namespace and name) whose name starts with `prefix`, by "
        "namespace then name; in `namespace` only, when given."
    )
    async def task_families(
        self,
        info: Info,
        namespace: str | None = None,
        prefix: str = "",
        first: int = task_search.MAX_SUGGESTIONS,
    ) -> list[TaskFamily]:
        async with info.context.reads() as session:
            families = await task_search.task_families(
                session, self.row_pk, namespace, prefix, first
            )
        return [TaskFamily(namespace=space, name=name) for space, name in families]

    @strawberry.field(description="Values of parameter `key` among matching tasks, by prefix.")
    async def filter_values(
        self, info: Info, key: str, filter: TaskFilter | None = None, prefix: str = ""
    ) -> list[str]:
        task_filter = filter.to_store() if filter else task_search.TaskFilter()
        async with info.context.reads() as session:
            return await task_search.filter_values(session, self.row_pk, task_filter, key, prefix)


@strawberry.type(description="A tenant: members, invites and workspaces.")
class Organization(Node):
    pk: NodeID[str]
    slug: str
    name: str
    created_at: datetime

    @classmethod
    def from_row(cls, row: models.Organization) -> Self:
        return cls(pk=str(row.id), slug=row.slug, name=row.name, created_at=row.created_at)

    @property
    def organization_pk(self) -> uuid.UUID:
        """The organization's row id, as the permission check reads it of any object."""
        return self.row_pk

    @strawberry.field(description="The caller's role here (an API key acts as a member).")
    def viewer_role(self, info: Info) -> models.Role:
        return info.context.identity.roles[self.row_pk]

    @classmethod
    async def resolve_nodes(  # type: ignore[override]
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Self | None]:
        visible = info.context.identity.organization_ids
        rows = await _visible_rows(
            info.context.loaders.organizations, node_ids, lambda row: row.id in visible
        )
        return [cls.from_row(row) if row else None for row in rows]

    @property
    def row_pk(self) -> uuid.UUID:
        """The organization's row id."""
        return uuid.UUID(self.pk)

    @strawberry.field(
        description="The organization's members, by email.", permission_classes=GUARDED
    )
    async def members(self, info: Info) -> list[Member]:
        async with info.context.reads() as session:
            rows = await tenancy.members_of(session, self.row_pk)
        return [
            Member(user=User.from_row(user), role=membership.role, joined_at=membership.created_at)
            for membership, user in rows
        ]

    @strawberry.field(
        description="Invitations not yet accepted, newest first.", permission_classes=GUARDED
    )
    async def invites(self, info: Info) -> list[Invite]:
        async with info.context.reads() as session:
            rows = await tenancy.pending_invites(session, self.row_pk)
        return [Invite.from_row(row) for row in rows]

    @strawberry.field(description="The organization's workspaces the caller reaches, by slug.")
    async def workspaces(self, info: Info) -> list[Workspace]:
        async with info.context.reads() as session:
            rows = await tenancy.workspaces_of(session, info.context.identity, self.row_pk)
        return [Workspace.from_row(row) for row in rows]


def _uuid_or_none(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


async def _visible_rows(
    loader: DataLoader[uuid.UUID, R | None],
    node_ids: Iterable[str],
    visible: Callable[[R], bool],
) -> list[R | None]:
    """Rows by node id, in order; None for a missing and a foreign one alike."""
    wanted = [_uuid_or_none(node_id) for node_id in node_ids]
    ids = [pk for pk in wanted if pk is not None]
    found = dict(zip(ids, await loader.load_many(ids), strict=True))
    return [
        row if pk is not None and (row := found.get(pk)) is not None and visible(row) else None
        for pk in wanted
    ]
