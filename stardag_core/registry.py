"""The registry hook points: what a build reports, and to whom.

A registry hears that a build started and finished, which tasks it found (with what each
needs, as the build's own graph has it), and what happened to each task. The methods must
not block: a registry that talks to a server queues what it hears and sends it
in the background. ``NoOpRegistry`` hears and forgets; the GraphQL registry plugs in here.

A registry that also holds *build locks* (``LockingRegistry``) lets many workers build the
same graph with each task run once: ``build(..., locks=True)`` takes a lease on a task
before running it, the registry renews the lease while the task runs, and the task's
completion is recorded only while the lease is still the live one (its fencing token).
"""

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol, runtime_checkable
from uuid import UUID, uuid4

from stardag_core.assets import RegistryAsset
from stardag_core.exceptions import LeaseLostError
from stardag_core.tasks import Task


class TaskEventKind(StrEnum):
    """What happened to a task in a build."""

    STARTED = "started"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    """The build was cancelled (interrupted) while the task ran."""


class BuildOutcome(StrEnum):
    """How a build ended."""

    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    """Interrupted (Ctrl+C), or cancelled by its caller."""


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


@dataclass(frozen=True)
class FoundTask:
    """A task a build found, with the tasks it needs; ``needs`` is None for a task found
    complete, whose dependencies the build did not look into."""

    task: Task
    needs: tuple[Task, ...] | None


@dataclass(frozen=True)
class LogLine:
    """A line a task's run wrote: its number in the run's log, its stream (``stdout``,
    ``stderr`` or ``log``), its text and when."""

    seq: int
    stream: str
    text: str
    at: datetime


class Registry(Protocol):
    """Hears about builds and tasks; never blocks the build."""

    def build_started(self, build: BuildRecord) -> None:
        """A build began."""
        ...

    def tasks_found(self, build: BuildRecord, found: Sequence[FoundTask]) -> None:
        """The build found these tasks: all of its graph once it is discovered, before any
        task runs, and later the tasks a run yields."""
        ...

    def task_event(self, event: TaskEvent) -> None:
        """A task started, completed, failed, was skipped as complete, or was cancelled
        with its build while it ran."""
        ...

    def task_logs(self, build_id: UUID, task: Task, lines: Sequence[LogLine]) -> None:
        """Lines a task's run wrote (in batches, in order, numbered from 0 for each run)."""
        ...

    def task_assets(self, build_id: UUID, task: Task, assets: Sequence[RegistryAsset]) -> None:
        """Assets a completed task published."""
        ...

    def build_finished(self, build: BuildRecord, outcome: BuildOutcome, at: datetime) -> None:
        """A build ended: completed, failed or cancelled."""
        ...


class NoOpRegistry:
    """A registry that records nothing."""

    def build_started(self, build: BuildRecord) -> None:
        """Ignore the build."""

    def tasks_found(self, build: BuildRecord, found: Sequence[FoundTask]) -> None:
        """Ignore the tasks."""

    def task_event(self, event: TaskEvent) -> None:
        """Ignore the event."""

    def task_logs(self, build_id: UUID, task: Task, lines: Sequence[LogLine]) -> None:
        """Ignore the lines."""

    def task_assets(self, build_id: UUID, task: Task, assets: Sequence[RegistryAsset]) -> None:
        """Ignore the assets."""

    def build_finished(self, build: BuildRecord, outcome: BuildOutcome, at: datetime) -> None:
        """Ignore the end of the build."""


@dataclass
class Lease:
    """A worker's hold on a task's build lock, renewed while the task runs.

    ``deadline`` (``time.monotonic()``) is when the lease lapses unless renewed, counted
    from before the request that granted or renewed it, so it never outlives the registry's.
    """

    key: str
    holder: str
    fencing_token: int
    deadline: float
    lost: bool = False

    @property
    def live(self) -> bool:
        """Whether the lease still holds: renewed in time and not taken over."""
        return not self.lost and time.monotonic() < self.deadline

    def check(self) -> None:
        """Raise ``LeaseLostError`` unless the lease is still live."""
        if not self.live:
            raise self.lost_error()

    def lost_error(self) -> LeaseLostError:
        """The error that says this lease lapsed, and what to do about it."""
        return LeaseLostError(
            f"the build lock {self.key} lapsed while its task ran (fencing token "
            f"{self.fencing_token}); another worker may be building it, so this worker's "
            "result is not recorded. If the task stalls for longer than the lease, raise "
            "build(lock_ttl=...)."
        )


class BuildLocks(Protocol):
    """Leases on tasks for one build, granted and renewed until released or completed. The
    scheduler awaits many calls at once on its event loop: an implementation may send them
    together, and must not block the loop while it waits for an answer."""

    async def acquire(self, task: Task) -> Lease | None:
        """A lease on ``task``, or None while another worker holds it."""
        ...

    async def release(self, lease: Lease) -> None:
        """Give the lease up without recording anything (the task failed or was complete)."""
        ...

    async def complete(self, lease: Lease, event: TaskEvent) -> bool:
        """Record ``event`` (the task's completion) and release the lease, only while the
        lease is live; False when it lapsed and nothing was recorded."""
        ...

    def close(self) -> None:
        """Stop renewing; leases still held lapse on their own."""
        ...


@runtime_checkable
class LockingRegistry(Registry, Protocol):
    """A registry that also holds build locks."""

    def build_locks(self, build: BuildRecord, ttl: float) -> BuildLocks:
        """Locks for ``build``, with leases of ``ttl`` seconds."""
        ...
