"""Building tasks Makefile-style: run what is missing, in dependency order.

``build`` walks down from the requested tasks, stops at every complete task, runs the rest
after their dependencies on an executor, and reports what happened in a ``BuildSummary``.
``build_async`` is the same build for code already inside an event loop; ``build`` is its
blocking form. There is one engine, the ``Scheduler``.
"""

import asyncio
import logging
from contextlib import AbstractContextManager, nullcontext
from typing import get_args

from stardag_core.blocking import run_blocking
from stardag_core.exceptions import ConfigError
from stardag_core.executors import Executor, ThreadExecutor
from stardag_core.profiles import resolve_registry
from stardag_core.progress import ProgressBar, ProgressReporter, Silent, wants_progress_bar
from stardag_core.registry import (
    BuildLocks,
    BuildOutcome,
    BuildRecord,
    LockingRegistry,
    NoOpRegistry,
    Registry,
    now,
)
from stardag_core.scheduler import FailMode, Scheduler
from stardag_core.summary import BuildSummary
from stardag_core.tasks import Task

logger = logging.getLogger("stardag.build")

DEFAULT_LOCK_TTL = 60.0
"""Seconds a build lock's lease lasts unless renewed (it is renewed every third of it)."""


async def build_async(
    *tasks: Task,
    executor: Executor | None = None,
    fail_mode: FailMode = "fail_fast",
    registry: Registry | None = None,
    progress: bool | None = None,
    locks: bool = False,
    lock_ttl: float = DEFAULT_LOCK_TTL,
) -> BuildSummary:
    """Build ``tasks`` and everything they need that is not complete yet.

    ``executor`` runs task code (default: a ``ThreadExecutor``). ``fail_mode="fail_fast"``
    stops starting tasks at the first failure; ``"continue"`` keeps building every branch
    that does not need the failed task. ``registry`` hears about the build (default: the
    configured registry, if any; see ``stardag_core.profiles``). ``progress``
    shows a bar (default: when standard error is a terminal). ``locks=True`` builds each
    task once across every worker building the same graph: the registry (which must hold
    locks, as ``GraphQLRegistry`` does) leases a task to one worker for ``lock_ttl``
    seconds, renewed while it runs.
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
    registry = registry or await _configured_registry() or NoOpRegistry()
    record = BuildRecord(roots=tasks)
    build_locks = _locks(registry, record, lock_ttl) if locks else None
    registry.build_started(record)
    outcome = BuildOutcome.FAILED
    bar: AbstractContextManager[ProgressReporter] = (
        ProgressBar() if wants_progress_bar(progress) else nullcontext(Silent())
    )
    try:
        with bar as reporter:
            await executor.start()
            try:
                scheduler = Scheduler(executor, fail_mode, registry, reporter, record, build_locks)
                summary = await scheduler.run(tasks)
            finally:
                await executor.close()
                if build_locks is not None:
                    build_locks.close()
        if summary.ok:
            outcome = BuildOutcome.COMPLETED
    except asyncio.CancelledError:
        outcome = BuildOutcome.CANCELLED
        raise
    finally:
        registry.build_finished(record, outcome, now())
    logger.info("build %s finished: %r", record.id, summary)
    return summary


def build(
    *tasks: Task,
    executor: Executor | None = None,
    fail_mode: FailMode = "fail_fast",
    registry: Registry | None = None,
    progress: bool | None = None,
    locks: bool = False,
    lock_ttl: float = DEFAULT_LOCK_TTL,
) -> BuildSummary:
    """Build ``tasks`` and everything they need that is not complete yet (blocking).

    The arguments are those of ``build_async``.
    """
    return run_blocking(
        lambda: build_async(
            *tasks,
            executor=executor,
            fail_mode=fail_mode,
            registry=registry,
            progress=progress,
            locks=locks,
            lock_ttl=lock_ttl,
        )
    )


def _locks(registry: Registry, record: BuildRecord, ttl: float) -> BuildLocks:
    if not isinstance(registry, LockingRegistry):
        found = (
            "and no registry is configured"
            if isinstance(registry, NoOpRegistry)
            else f"and {registry!r} holds none"
        )
        raise ConfigError(
            f"build(locks=True) needs a registry that holds build locks, {found}: configure "
            "one (a profile, `stardag profile use NAME`, or STARDAG_REGISTRY_URL, "
            "STARDAG_API_KEY and STARDAG_WORKSPACE) or pass registry=GraphQLRegistry(...)"
        )
    if not 0 < ttl <= 86_400:
        raise ValueError(f"lock_ttl must be above 0 and at most 86400 seconds, got {ttl!r}")
    return registry.build_locks(record, ttl)


async def _configured_registry() -> Registry | None:
    """The configured registry, its target roots checked (see ``stardag_core.client``)."""
    config = resolve_registry()
    if config is None:
        return None
    try:
        # The GraphQL client is the optional `registry` extra: imported only when configured.
        from stardag_core.client import configured_registry
    except ImportError as error:
        raise ConfigError(
            f"a registry is configured ({config.describe()}) but its client is not installed "
            f"({error}): pip install 'stardag[registry]'"
        ) from error
    return await asyncio.to_thread(configured_registry)
