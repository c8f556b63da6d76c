"""Building tasks Makefile-style: run what is missing, in dependency order.

Walks down from the requested tasks, stops at every complete task, runs the rest after
their dependencies, and reports what happened in a ``BuildSummary``. A ``run`` that is a
generator yields tasks it needs once running (dynamic dependencies): they are built, then
``run`` resumes. This is the sequential engine; tasks are checked for completeness once.
"""

import asyncio
import inspect
import time
import traceback
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from stardag_core.exceptions import BuildFailedError
from stardag_core.tasks import Task, flatten_tasks


@dataclass(frozen=True)
class TaskFailure:
    """A task that failed, with its exception and the formatted traceback."""

    task: Task
    error: BaseException
    traceback: str


@dataclass
class BuildSummary:
    """What a build did: tasks built, skipped as complete, failed; per-task durations."""

    built: list[Task] = field(default_factory=list)
    skipped: list[Task] = field(default_factory=list)
    failures: list[TaskFailure] = field(default_factory=list)
    durations: dict[UUID, float] = field(default_factory=dict)
    """Seconds each built or failed task spent running, by task id."""

    @property
    def ok(self) -> bool:
        """Whether no task failed."""
        return not self.failures

    def raise_on_failure(self) -> "BuildSummary":
        """Raise ``BuildFailedError`` naming each failed task; return self when none did."""
        if self.failures:
            lines = [f"{len(self.failures)} task(s) failed:"]
            lines += [f"  {f.task!r} ({f.task.id}): {f.error!r}" for f in self.failures]
            raise BuildFailedError("\n".join(lines)) from self.failures[0].error
        return self

    def __repr__(self) -> str:
        return (
            f"<BuildSummary built={len(self.built)} skipped={len(self.skipped)} "
            f"failed={len(self.failures)}>"
        )


def build(*tasks: Task) -> BuildSummary:
    """Build ``tasks`` and everything they need that is not complete yet."""
    builder = _Builder()
    for task in tasks:
        if not builder.build(task):
            break
    return builder.summary


class _Builder:
    def __init__(self) -> None:
        self.summary = BuildSummary()
        self._complete: dict[UUID, bool] = {}

    def is_complete(self, task: Task) -> bool:
        if task.id not in self._complete:
            self._complete[task.id] = task.complete()
            if self._complete[task.id]:
                self.summary.skipped.append(task)
        return self._complete[task.id]

    def build(self, root: Task) -> bool:
        """Build ``root`` and its missing dependencies; False once a task has failed."""
        stack: list[tuple[Task, bool]] = [(root, False)]
        while stack:
            task, dependencies_done = stack.pop()
            if self.is_complete(task):
                continue
            if dependencies_done:
                if not self.run(task):
                    return False
                continue
            stack.append((task, True))
            stack.extend((dep, False) for dep in flatten_tasks(task.requires()))
        return True

    def run(self, task: Task) -> bool:
        started = time.perf_counter()
        try:
            result = task.run()
            if inspect.isgenerator(result):
                self._drive(result)
            elif inspect.iscoroutine(result):
                asyncio.run(result)
        except Exception as error:
            self.summary.durations[task.id] = time.perf_counter() - started
            self.summary.failures.append(TaskFailure(task, error, traceback.format_exc()))
            return False
        self.summary.durations[task.id] = time.perf_counter() - started
        self.summary.built.append(task)
        self._complete[task.id] = True
        return True

    def _drive(self, generator: Generator[Any, Any, Any]) -> None:
        for yielded in generator:
            for dependency in flatten_tasks(yielded):
                if not self.build(dependency):
                    cause = self.summary.failures[-1].error
                    raise BuildFailedError(f"dynamic dependency {dependency!r} failed: {cause!r}")
