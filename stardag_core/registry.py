"""The registry hook points: what a build reports, and to whom.

A registry hears that a build started and finished, and what happened to each task. The
methods must not block: a registry that talks to a server queues what it hears and sends it
in the background. ``NoOpRegistry`` hears and forgets; the GraphQL registry plugs in here.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol
from uuid import UUID, uuid4

from stardag_core.tasks import Task


class TaskEventKind(StrEnum):
    """What happened to a task in a build."""

    STARTED = "started"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"


def now() -> datetime:
    """The current time, timezone-aware (UTC)."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class BuildRecord:
    """One build: its id, the tasks asked for, when it started."""

    roots: tuple[Task, ...]
    id: UUID = field(default_factory=uuid4)
    started_at: datetime = field(default_factory=now)


@dataclass(frozen=True)
class TaskEvent:
    """Something that happened to a task in a build, with when."""

    build_id: UUID
    task: Task
    kind: TaskEventKind
    at: datetime = field(default_factory=now)
    error: str | None = None
    """For ``FAILED``: the exception, formatted with its traceback."""


class Registry(Protocol):
    """Hears about builds and tasks; never blocks the build."""

    def build_started(self, build: BuildRecord) -> None:
        """A build began."""
        ...

    def task_event(self, event: TaskEvent) -> None:
        """A task started, completed, failed or was skipped as complete."""
        ...

    def build_finished(self, build: BuildRecord, succeeded: bool, at: datetime) -> None:
        """A build ended, successfully or not."""
        ...


class NoOpRegistry:
    """A registry that records nothing."""

    def build_started(self, build: BuildRecord) -> None:
        """Ignore the build."""

    def task_event(self, event: TaskEvent) -> None:
        """Ignore the event."""

    def build_finished(self, build: BuildRecord, succeeded: bool, at: datetime) -> None:
        """Ignore the end of the build."""
