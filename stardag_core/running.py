"""Running one task's code: the steps an executor carries out.

``run`` may return nothing, a coroutine, or a generator that yields the tasks it needs once
running (dynamic dependencies). A *local* executor (inline, threads) keeps a suspended
generator in this process and resumes it once the yielded tasks are built. A *remote* one
(processes, Dask) cannot send a generator back, so ``run_remote`` drives the generator as far
as it can and, at the first yielded task that is not complete, closes it and reports what is
missing; the task runs again, from the start, once those are built. ``run`` must therefore be
idempotent up to its yields, as Luigi's dynamic dependencies also require. A remote run also
sends back what it logged and printed (when the build captures it), and an error it raised
with its traceback as text: a traceback does not travel between processes.
"""

import inspect
import traceback
from collections.abc import Generator
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, cast

from stardag_core.capture import TaskLog, capturing_into
from stardag_core.config import Settings, use_settings
from stardag_core.registry import LogLine
from stardag_core.tasks import Task, TaskStruct, flatten_tasks


@dataclass(frozen=True)
class Finished:
    """``run`` returned."""


@dataclass(frozen=True)
class Suspended:
    """``run`` yielded tasks; ``generator`` resumes it (None when it ran remotely)."""

    needs: list[Task]
    generator: Generator[Any, Any, Any] | None = None


Outcome = Finished | Suspended


def start(task: Task) -> Outcome:
    """Call ``task.run()`` and advance it to its first yield, if it yields."""
    result = task.run()
    if inspect.isgenerator(result):
        return resume(result)
    return Finished()


def resume(generator: Generator[Any, Any, Any]) -> Outcome:
    """Advance a suspended ``run`` to its next yield, or to its end."""
    try:
        yielded = next(generator)
    except StopIteration:
        return Finished()
    return Suspended(flatten_tasks(cast(TaskStruct, yielded)), generator)


class RemoteTraceback(Exception):
    """The traceback of an error raised in a worker process, as text: the cause of that
    error once it is raised again in the build's process."""

    def __str__(self) -> str:
        return f"\n\n{self.args[0]}"


@dataclass(frozen=True)
class RemoteRun:
    """What a run in a worker process sends back: its outcome, or the error it raised with
    its traceback, and the lines it logged and printed."""

    outcome: Outcome | None
    lines: list[LogLine]
    error: Exception | None = None
    traceback: str = ""

    def result(self) -> Outcome:
        """The outcome; the run's error, raised again, if it failed."""
        if self.error is not None:
            raise self.error from RemoteTraceback(self.traceback)
        return cast(Outcome, self.outcome)


def run_remote(task: Task, settings: Settings, log_level: int | None) -> RemoteRun:
    """Run ``task`` in a worker process: to its end, or until it needs a missing task. With
    ``log_level`` (the build's), capture what it prints and logs at that level or above."""
    lines: list[LogLine] = []
    log = TaskLog(lines.extend)
    try:
        with (
            use_settings(settings),
            capturing_into(log, log_level) if log_level is not None else nullcontext(),
        ):
            outcome = _run_to_a_missing_need(task)
    except Exception as error:
        return RemoteRun(None, lines, error, traceback.format_exc())
    return RemoteRun(outcome, lines)


def _run_to_a_missing_need(task: Task) -> Outcome:
    outcome = start(task)
    while isinstance(outcome, Suspended):
        generator = cast(Generator[Any, Any, Any], outcome.generator)  # start/resume keep it
        missing = [need for need in outcome.needs if not need.complete()]
        if missing:
            # The generator cannot travel back to the scheduler: the task runs again.
            generator.close()
            return Suspended(missing)
        outcome = resume(generator)
    return outcome


def is_async(task: Task) -> bool:
    """Whether ``task.run`` is ``async`` (a coroutine or async generator): it runs on the loop."""
    run = type(task).run
    return inspect.iscoroutinefunction(run) or inspect.isasyncgenfunction(run)
