"""Building tasks Makefile-style: run what is missing, in dependency order.

``build`` walks down from the requested tasks, stops at every complete task, runs the rest
after their dependencies on an executor, and reports what happened in a ``BuildSummary``.
``build_async`` is the same build for code already inside an event loop; ``build`` is its
blocking form. There is one engine, the ``Scheduler``.
"""

import logging
from contextlib import AbstractContextManager, nullcontext
from typing import get_args

from stardag_core.blocking import run_blocking
from stardag_core.executors import Executor, ThreadExecutor
from stardag_core.progress import ProgressBar, ProgressReporter, Silent, wants_progress_bar
from stardag_core.registry import BuildRecord, NoOpRegistry, Registry, now
from stardag_core.scheduler import FailMode, Scheduler
from stardag_core.summary import BuildSummary
from stardag_core.tasks import Task

logger = logging.getLogger("stardag.build")


async def build_async(
    *tasks: Task,
    executor: Executor | None = None,
    fail_mode: FailMode = "fail_fast",
    registry: Registry | None = None,
    progress: bool | None = None,
) -> BuildSummary:
    """Build ``tasks`` and everything they need that is not complete yet.

    ``executor`` runs task code (default: a ``ThreadExecutor``). ``fail_mode="fail_fast"``
    stops starting tasks at the first failure; ``"continue"`` keeps building every branch
    that does not need the failed task. ``registry`` hears about the build. ``progress``
    shows a bar (default: when standard error is a terminal).
    """
    wrong = [task for task in tasks if not isinstance(task, Task)]
    if wrong:
        raise TypeError(
            f"build() takes tasks, got {wrong[0]!r} ({type(wrong[0]).__name__}): pass task "
            "instances, e.g. build(Train(epochs=3)), or unpack a list: build(*tasks)"
        )
    if fail_mode not in get_args(FailMode):
        raise ValueError(f"fail_mode must be 'fail_fast' or 'continue', got {fail_mode!r}")
    executor = executor or ThreadExecutor()
    registry = registry or NoOpRegistry()
    record = BuildRecord(roots=tasks)
    registry.build_started(record)
    succeeded = False
    bar: AbstractContextManager[ProgressReporter] = (
        ProgressBar() if wants_progress_bar(progress) else nullcontext(Silent())
    )
    try:
        with bar as reporter:
            await executor.start()
            try:
                scheduler = Scheduler(executor, fail_mode, registry, reporter, record)
                summary = await scheduler.run(tasks)
            finally:
                await executor.close()
        succeeded = summary.ok
    finally:
        registry.build_finished(record, succeeded, now())
    logger.info("build %s finished: %r", record.id, summary)
    return summary


def build(
    *tasks: Task,
    executor: Executor | None = None,
    fail_mode: FailMode = "fail_fast",
    registry: Registry | None = None,
    progress: bool | None = None,
) -> BuildSummary:
    """Build ``tasks`` and everything they need that is not complete yet (blocking).

    The arguments are those of ``build_async``.
    """
    return run_blocking(
        lambda: build_async(
            *tasks, executor=executor, fail_mode=fail_mode, registry=registry, progress=progress
        )
    )
