"""What a build did: ``BuildSummary``."""

from dataclasses import dataclass, field
from uuid import UUID

from stardag_core.exceptions import BuildFailedError
from stardag_core.tasks import Task


@dataclass(frozen=True)
class TaskFailure:
    """A task that failed, with its exception and the formatted traceback."""

    task: Task
    error: BaseException
    traceback: str


@dataclass
class BuildSummary:
    """What a build did: tasks built, skipped as complete, failed, blocked, not run."""

    built: list[Task] = field(default_factory=list)
    skipped: list[Task] = field(default_factory=list)
    """Tasks found complete: never run."""
    failures: list[TaskFailure] = field(default_factory=list)
    blocked: list[Task] = field(default_factory=list)
    """Tasks not run because a task they need failed."""
    not_run: list[Task] = field(default_factory=list)
    """Tasks not run because the build stopped at the first failure (fail-fast)."""
    durations: dict[UUID, float] = field(default_factory=dict)
    """Seconds each built or failed task spent running, by task id."""

    @property
    def ok(self) -> bool:
        """Whether every requested task is complete: nothing failed, was blocked or left."""
        return not (self.failures or self.blocked or self.not_run)

    @property
    def counts(self) -> dict[str, int]:
        """How many tasks were built, skipped, failed, blocked and not run."""
        return {
            "built": len(self.built),
            "skipped": len(self.skipped),
            "failed": len(self.failures),
            "blocked": len(self.blocked),
            "not_run": len(self.not_run),
        }

    def raise_on_failure(self) -> "BuildSummary":
        """Raise ``BuildFailedError`` naming each failed task; return self when none did."""
        if self.ok:
            return self
        lines = [f"{len(self.failures)} task(s) failed:"]
        lines += [f"  {f.task!r} ({f.task.id}): {f.error!r}" for f in self.failures]
        if self.blocked:
            lines.append(f"{len(self.blocked)} task(s) blocked by a failed dependency")
        if self.not_run:
            lines.append(f"{len(self.not_run)} task(s) not run: the build stopped (fail-fast)")
        cause = self.failures[0].error if self.failures else None
        raise BuildFailedError("\n".join(lines)) from cause

    def __repr__(self) -> str:
        counts = " ".join(f"{kind}={count}" for kind, count in self.counts.items() if count)
        return f"<BuildSummary {counts or 'empty'}>"
