"""The registry's tables as SQLAlchemy 2 typed declarative models.

Everything a pipeline reports lives in a workspace, and a workspace in an organization.
Primary keys are UUIDs throughout. A task's own deterministic id (the one stardag computes
from its parameters) is the `task_id` column; it is unique per workspace, so the same task in
two workspaces is two rows. Foreign keys to a task row are therefore named `task_pk` (and
`upstream_pk`/`downstream_pk`) so they are never mistaken for that id.

Enumerations are stored as strings guarded by CHECK constraints (`native_enum=False`), so a
downgrade leaves no PostgreSQL enum types behind.
"""

import enum
import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Dialect,
    Enum,
    ForeignKey,
    Index,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, column_property, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp that reads back in UTC on every backend, SQLite included."""

    impl = DateTime(timezone=True)
    cache_ok = True

    @property
    def python_type(self) -> type[datetime]:
        """Values are `datetime`s (keyset cursors decode by this)."""
        return datetime

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Store UTC; refuse naive datetimes, whose meaning is ambiguous."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Read back as UTC (SQLite drops the offset it was stored with)."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


JSONType = JSON().with_variant(JSONB(), "postgresql")


def _enum(cls: type[enum.StrEnum], name: str) -> Enum:
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=32,
        values_callable=lambda members: [member.value for member in members],
    )


class Role(enum.StrEnum):
    """A member's role in an organization."""

    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"


class BuildStatus(enum.StrEnum):
    """Where a build is in its life."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class TaskStatus(enum.StrEnum):
    """A task's current status, as the latest event left it."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class EventKind(enum.StrEnum):
    """What an event reports."""

    BUILD_STARTED = "build_started"
    BUILD_COMPLETED = "build_completed"
    BUILD_FAILED = "build_failed"
    BUILD_CANCELLED = "build_cancelled"
    TASK_PENDING = "task_pending"
    TASK_RUNNING = "task_running"
    TASK_COMPLETED = "task_completed"
    TASK_FAILED = "task_failed"
    TASK_CANCELLED = "task_cancelled"


class AssetKind(enum.StrEnum):
    """The format of an asset attached to a task."""

    MARKDOWN = "markdown"
    JSON = "json"


class Base(DeclarativeBase):
    """The declarative base; its metadata is what the Alembic migrations describe."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSONType,
    }


def _id() -> Mapped[uuid.UUID]:
    return mapped_column(primary_key=True, default=uuid.uuid4)


def _created_at() -> Mapped[datetime]:
    return mapped_column(default=utcnow)


def _workspace_fk() -> Mapped[uuid.UUID]:
    return mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))


def _task_fk() -> Mapped[uuid.UUID]:
    return mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))


class User(Base):
    """A person; `oidc_subject` links them to their identity provider account."""

    __tablename__ = "users"

    id: Mapped[uuid.UUID] = _id()
    email: Mapped[str] = mapped_column(String(320), unique=True)
    email_verified: Mapped[bool] = mapped_column(default=False, server_default=false())
    display_name: Mapped[str] = mapped_column(String(200), default="")
    oidc_subject: Mapped[str | None] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = _created_at()


class Organization(Base):
    """A tenant: it owns members, invites and workspaces."""

    __tablename__ = "organizations"

    id: Mapped[uuid.UUID] = _id()
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = _created_at()


class Membership(Base):
    """A user's membership of an organization, with a role."""

    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("organization_id", "user_id"),)

    id: Mapped[uuid.UUID] = _id()
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[Role] = mapped_column(_enum(Role, "role"))
    created_at: Mapped[datetime] = _created_at()


class Invite(Base):
    """An invitation to join an organization, accepted by whoever signs in with its email.

    Declined and revoked invites are deleted; an accepted one keeps `accepted_at`.
    """

    __tablename__ = "invites"

    id: Mapped[uuid.UUID] = _id()
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    email: Mapped[str] = mapped_column(String(320))
    role: Mapped[Role] = mapped_column(_enum(Role, "role"))
    invited_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = _created_at()
    expires_at: Mapped[datetime]
    accepted_at: Mapped[datetime | None]


class Workspace(Base):
    """Where builds and tasks live; API keys and target roots belong to one workspace."""

    __tablename__ = "workspaces"
    __table_args__ = (UniqueConstraint("organization_id", "slug"),)

    id: Mapped[uuid.UUID] = _id()
    organization_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    slug: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = _created_at()
    archived_at: Mapped[datetime | None]


class TargetRoot(Base):
    """A named target root (any fsspec URL) that a workspace's outputs live under."""

    __tablename__ = "target_roots"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    id: Mapped[uuid.UUID] = _id()
    workspace_id: Mapped[uuid.UUID] = _workspace_fk()
    name: Mapped[str] = mapped_column(String(64))
    uri: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = _created_at()


class ApiKey(Base):
    """A workspace API key: a SHA-256 hash of the secret and a non-secret lookup prefix."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = _id()
    workspace_id: Mapped[uuid.UUID] = _workspace_fk()
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = _created_at()
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class Build(Base):
    """One run of `build(...)`: who started it, from which commit, and how it ended."""

    __tablename__ = "builds"
    __table_args__ = (Index(None, "workspace_id", "started_at"),)

    id: Mapped[uuid.UUID] = _id()
    workspace_id: Mapped[uuid.UUID] = _workspace_fk()
    name: Mapped[str] = mapped_column(String(100))
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    commit: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[BuildStatus] = mapped_column(
        _enum(BuildStatus, "build_status"), default=BuildStatus.RUNNING
    )
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class Task(Base):
    """A task, registered once per workspace by its deterministic id."""

    __tablename__ = "tasks"
    __table_args__ = (
        UniqueConstraint("workspace_id", "task_id"),
        # Keyset pages: each list ordering, alone or after the common filters, is an index scan.
        Index(None, "workspace_id", "created_at", "id"),
        Index(None, "workspace_id", "updated_at", "id"),
        Index(None, "workspace_id", "namespace", "name", "created_at", "id"),
        Index(None, "workspace_id", "status", "created_at", "id"),
        # Parameter filters are JSONB containment, which a GIN index answers (PostgreSQL only).
        Index(
            "ix_tasks_parameters_gin",
            "parameters",
            postgresql_using="gin",
            postgresql_ops={"parameters": "jsonb_path_ops"},
            info={"dialects": ["postgresql"]},
        ).ddl_if(dialect="postgresql"),
    )

    id: Mapped[uuid.UUID] = _id()
    workspace_id: Mapped[uuid.UUID] = _workspace_fk()
    task_id: Mapped[str] = mapped_column(String(64))
    namespace: Mapped[str] = mapped_column(String(255), default="")
    name: Mapped[str] = mapped_column(String(255))
    version: Mapped[str] = mapped_column(String(64), default="")
    parameters: Mapped[dict[str, Any]]
    output_uri: Mapped[str | None] = mapped_column(Text)
    status: Mapped[TaskStatus] = mapped_column(
        _enum(TaskStatus, "task_status"), default=TaskStatus.PENDING
    )
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class TaskParameterValue(Base):
    """One scalar parameter of a task, by its own key and value: SQLite's index for filters.

    SQLite has no index that answers "the parameter at some path has this value", so triggers
    on `tasks` (created by migration 0005, SQLite only) keep this table: a row for every
    scalar leaf of a task's parameters (null excepted) whose key does not start with `__`,
    text up to `INDEXED_TEXT_LENGTH` characters. The leaf's key stands for its whole path: a
    lookup finds candidates, which the exact `json_extract` condition then checks. `created_at`
    repeats the task's, so the candidates of one value come newest first, as task lists run.
    The value column has no type affinity: numbers and text keep their own. PostgreSQL answers
    the same filters from a GIN index on `tasks.parameters` and has no such table.

    A migration that makes Alembic recreate `tasks` on SQLite (a batch operation that alters
    a column) drops its triggers, and must create them again.
    """

    __tablename__ = "task_parameter_values"
    __table_args__ = ({"info": {"dialects": ["sqlite"]}, "sqlite_with_rowid": False},)

    INDEXED_TEXT_LENGTH: ClassVar[int] = 256

    workspace_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(Text, primary_key=True)
    value: Mapped[Any] = mapped_column(LargeBinary, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(primary_key=True)
    task_pk: Mapped[uuid.UUID] = mapped_column(primary_key=True)


class TaskDependency(Base):
    """An edge: `downstream_pk` needs `upstream_pk`. Indexed both ways for lineage queries."""

    __tablename__ = "task_dependencies"
    __table_args__ = (
        Index(None, "downstream_pk", "upstream_pk"),
        CheckConstraint("upstream_pk <> downstream_pk", name="not_self"),
    )

    upstream_pk: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True
    )
    downstream_pk: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True
    )
    workspace_id: Mapped[uuid.UUID] = _workspace_fk()


class BuildTask(Base):
    """A task that took part in a build; `is_root` marks the tasks the build was asked for."""

    __tablename__ = "build_tasks"
    __table_args__ = (Index(None, "task_pk"),)

    build_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("builds.id", ondelete="CASCADE"), primary_key=True
    )
    task_pk: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True
    )
    is_root: Mapped[bool] = mapped_column(default=False)


class Event(Base):
    """An append-only event; `event_id` is chosen by the client so resending is harmless."""

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("workspace_id", "event_id"),
        Index(None, "build_id", "occurred_at"),
        Index(None, "build_id", "recorded_at", "id"),
        Index(None, "task_pk", "occurred_at"),
    )

    id: Mapped[uuid.UUID] = _id()
    workspace_id: Mapped[uuid.UUID] = _workspace_fk()
    event_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[EventKind] = mapped_column(_enum(EventKind, "event_kind"))
    build_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("builds.id", ondelete="CASCADE"))
    task_pk: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    payload: Mapped[dict[str, Any]]
    occurred_at: Mapped[datetime]
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The stardag id of the event's task, read with the event row (one primary-key lookup
    # inside the same statement), so a timeline needs no Task object per event.
    task_id: Mapped[str | None] = column_property(
        select(Task.task_id).where(Task.id == task_pk).scalar_subquery()
    )


class Asset(Base):
    """A named markdown or JSON document attached to a task."""

    __tablename__ = "assets"
    __table_args__ = (
        UniqueConstraint("task_pk", "name"),
        CheckConstraint(
            "(kind = 'markdown' AND body IS NOT NULL) OR (kind = 'json' AND data IS NOT NULL)",
            name="content_matches_kind",
        ),
    )

    id: Mapped[uuid.UUID] = _id()
    workspace_id: Mapped[uuid.UUID] = _workspace_fk()
    task_pk: Mapped[uuid.UUID] = _task_fk()
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[AssetKind] = mapped_column(_enum(AssetKind, "asset_kind"))
    body: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = _created_at()


class LogEntry(Base):
    """A line of a task's log output; `seq`, the client's line number, orders and dedupes."""

    __tablename__ = "logs"
    __table_args__ = (UniqueConstraint("task_pk", "seq"),)

    id: Mapped[uuid.UUID] = _id()
    workspace_id: Mapped[uuid.UUID] = _workspace_fk()
    task_pk: Mapped[uuid.UUID] = _task_fk()
    seq: Mapped[int] = mapped_column(BigInteger)
    build_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("builds.id", ondelete="CASCADE"), index=True
    )
    stream: Mapped[str] = mapped_column(String(16), default="stdout")
    text: Mapped[str] = mapped_column(Text)
    logged_at: Mapped[datetime] = mapped_column(default=utcnow)


class Lock(Base):
    """A build lock: a lease on `key` held by `holder` until `expires_at`.

    The row outlives each lease, so `fencing_token` grows by one at every acquisition and a
    holder whose lease has lapsed is recognised by its stale token when it tries to complete.
    """

    __tablename__ = "locks"
    __table_args__ = (UniqueConstraint("workspace_id", "key"),)

    id: Mapped[uuid.UUID] = _id()
    workspace_id: Mapped[uuid.UUID] = _workspace_fk()
    key: Mapped[str] = mapped_column(String(255))
    holder: Mapped[str | None] = mapped_column(String(255))
    fencing_token: Mapped[int] = mapped_column(BigInteger, default=0)
    acquired_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
