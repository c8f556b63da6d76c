"""The build scheduler: one event loop that discovers the graph and runs what is missing.

Discovery walks down from the requested tasks a frontier at a time, checking the
completeness of a whole frontier at once (one batched existence check for tasks whose
``complete`` is the default, bounded concurrency for the others), and stops at complete
tasks. Each task is a node, keyed by id and checked once. A node counts the dependencies
it still waits for; when the count reaches zero it joins the ready queue, and the loop
hands ready nodes to the executor, as many as it has slots. Finishing a node counts down
its dependents: the work per task is constant, so a build is linear in its size.

With build locks, a ready task runs only once this worker holds its lease. A task another
worker holds is parked, off the executor's slots, and polled until it is complete (skipped
here) or free (taken here); a task found complete right after taking its lease is skipped
too. Its outputs commit only while the lease is live, and its completion is recorded
through the lock, which refuses a lapsed lease.
"""

import asyncio
import enum
import inspect
import logging
import time
import traceback
from collections import deque
from collections.abc import AsyncGenerator, Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, Literal, TypeVar
from uuid import UUID

from stardag_core.capture import TaskLog, capturing, logging_to
from stardag_core.config import get_settings
from stardag_core.exceptions import DependencyCycleError, DependencyFailedError, LeaseLostError
from stardag_core.executors import Executor
from stardag_core.progress import ProgressReporter
from stardag_core.registry import (
    BuildLocks,
    BuildRecord,
    FoundTask,
    Lease,
    NoOpRegistry,
    Registry,
    TaskEvent,
    TaskEventKind,
)
from stardag_core.running import Finished, Outcome, Suspended, is_async, resume, run_remote, start
from stardag_core.summary import BuildSummary, TaskFailure
from stardag_core.targets import Target, commit_guard, exists_many_async
from stardag_core.tasks import Task, flatten_targets, flatten_tasks

FailMode = Literal["fail_fast", "continue"]
T = TypeVar("T")

logger = logging.getLogger("stardag.build")

_COMPLETENESS_CONCURRENCY = 64
_LOCK_POLL_SECONDS = 0.25


class _State(enum.Enum):
    CHECKING = "checking"
    WAITING = "waiting"
    READY = "ready"
    PARKED = "parked"
    RUNNING = "running"
    SUSPENDED = "suspended"
    BUILT = "built"
    COMPLETE = "complete"
    FAILED = "failed"
    BLOCKED = "blocked"


_SATISFIED = frozenset({_State.BUILT, _State.COMPLETE})
_UNSATISFIABLE = frozenset({_State.FAILED, _State.BLOCKED})
_PENDING = frozenset({_State.WAITING, _State.READY, _State.PARKED, _State.SUSPENDED})


class _Node:
    __slots__ = (
        "children",
        "dependents",
        "elapsed",
        "generator",
        "lease",
        "log",
        "state",
        "task",
        "waiting_on",
    )

    def __init__(self, task: Task) -> None:
        self.task = task
        self.state = _State.CHECKING
        self.waiting_on = 0
        self.children: list[_Node] = []
        self.dependents: list[_Node] = []
        self.generator: Generator[Any, Any, Any] | AsyncGenerator[Any, Any] | None = None
        self.elapsed: float | None = None
        self.lease: Lease | None = None
        self.log: TaskLog | None = None


class Scheduler:
    """Builds the tasks of one build; create one per build."""

    def __init__(
        self,
        executor: Executor,
        fail_mode: FailMode,
        registry: Registry,
        progress: ProgressReporter,
        build: BuildRecord,
        locks: BuildLocks | None = None,
    ) -> None:
        self.summary = BuildSummary()
        self._locks = locks
        self._lock_threads: ThreadPoolExecutor | None = None
        # What runs log and print is captured only for a registry that keeps it.
        self._capture = not isinstance(registry, NoOpRegistry)
        # Runs in worker processes capture at the level logging here lets through.
        self._log_level = logging.getLogger().getEffectiveLevel() if self._capture else None
        self._executor = executor
        self._fail_fast = fail_mode == "fail_fast"
        self._registry = registry
        self._progress = progress
        self._build = build
        self._settings = get_settings()
        self._nodes: dict[UUID, _Node] = {}
        self._ready: deque[_Node] = deque()
        # Waits that hold no executor slot: tasks parked on another worker's lock, and
        # completions being recorded under a lock.
        self._aside: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._custom_checks = asyncio.Semaphore(_COMPLETENESS_CONCURRENCY)

    async def run(self, roots: Sequence[Task]) -> BuildSummary:
        """Build ``roots``; ``DependencyCycleError`` before anything runs if they form a cycle."""
        cycle = _find_cycle(await self._discover(roots))
        if cycle:
            raise DependencyCycleError(_describe_cycle(cycle))
        try:
            with capturing() if self._capture else nullcontext():
                await self._run_ready()
            await self._close_leftovers()
        finally:
            if self._lock_threads is not None:
                self._lock_threads.shutdown(wait=False)
        return self.summary

    async def _run_ready(self) -> None:
        """Hand ready nodes to the executor until none is ready, running or parked."""
        running: set[asyncio.Task[None]] = set()
        while True:
            while self._ready and len(running) < self._executor.slots and not self._stopping:
                node = self._ready.popleft()
                if node.state is _State.READY:
                    node.state = _State.RUNNING
                    running.add(asyncio.create_task(self._execute(node)))
            if not running and not self._aside:
                break
            finished, _ = await asyncio.wait(
                running | self._aside, return_when=asyncio.FIRST_COMPLETED
            )
            running -= finished
            self._aside -= finished
            for done in finished:
                done.result()  # the scheduler's own bugs surface here, not in a task's failure

    async def _discover(self, tasks: Iterable[Task], parent: _Node | None = None) -> list[_Node]:
        """Add ``tasks`` and what they need to the graph; return the nodes of ``tasks``."""
        direct: list[_Node] = []
        frontier: list[_Node] = []
        for task in tasks:
            node = self._node(task, frontier)
            direct.append(node)
            if parent is not None:
                self._link(parent, node)
        found = list(frontier)
        while frontier:
            completeness = await self._check(frontier)
            next_frontier: list[_Node] = []
            for node, complete in zip(frontier, completeness, strict=True):
                if node.state is not _State.CHECKING:
                    continue
                if complete:
                    self._skip(node)
                    continue
                try:
                    needs = flatten_tasks(node.task.requires())
                except Exception as error:
                    self._fail(node, error, traceback.format_exc())
                    continue
                node.state = _State.WAITING
                self._progress.grow(1)
                for need in needs:
                    self._link(node, self._node(need, next_frontier))
                if node.state is _State.WAITING and node.waiting_on == 0:
                    self._enqueue(node)
            frontier = next_frontier
            found.extend(frontier)
        if found:
            self._registry.tasks_found(self._build, [_found(node) for node in found])
        return direct

    def _node(self, task: Task, new_nodes: list[_Node]) -> _Node:
        node = self._nodes.get(task.id)
        if node is None:
            node = self._nodes[task.id] = _Node(task)
            new_nodes.append(node)
        return node

    def _link(self, parent: _Node, child: _Node) -> None:
        parent.children.append(child)
        if child.state in _SATISFIED:
            return
        parent.waiting_on += 1
        if child.state in _UNSATISFIABLE:
            if not self._fail_fast:
                self._block([parent])
            return
        child.dependents.append(parent)

    async def _check(self, nodes: list[_Node]) -> list[bool]:
        """Whether each node's task is complete; a task whose check raises fails."""
        results = [False] * len(nodes)
        targets: list[Target] = []
        spans: list[tuple[int, int, int]] = []
        custom: list[int] = []
        for index, node in enumerate(nodes):
            if type(node.task).complete is not Task.complete:
                custom.append(index)
                continue
            try:
                outputs = flatten_targets(node.task.output())
            except Exception as error:
                self._fail(node, error, traceback.format_exc())
                continue
            spans.append((index, len(targets), len(targets) + len(outputs)))
            targets.extend(outputs)

        async def check_custom(index: int) -> None:
            async with self._custom_checks:
                try:
                    results[index] = await asyncio.to_thread(nodes[index].task.complete)
                except Exception as error:
                    self._fail(nodes[index], error, traceback.format_exc())

        existence = asyncio.ensure_future(exists_many_async(targets))
        await asyncio.gather(*(check_custom(index) for index in custom))
        found = await existence
        for index, begin, end in spans:
            results[index] = begin < end and all(found[begin:end])
        return results

    def _enqueue(self, node: _Node) -> None:
        node.state = _State.READY
        self._ready.append(node)

    def _satisfied(self, node: _Node) -> None:
        for dependent in node.dependents:
            dependent.waiting_on -= 1
            if dependent.waiting_on == 0 and dependent.state in (_State.WAITING, _State.SUSPENDED):
                self._enqueue(dependent)

    def _skip(self, node: _Node) -> None:
        node.state = _State.COMPLETE
        self.summary.skipped.append(node.task)
        self._emit(node, TaskEventKind.SKIPPED)
        self._satisfied(node)

    async def _execute(self, node: _Node) -> None:
        if node.elapsed is None:
            if self._locks is not None and not await self._take_lock(node, self._locks):
                return
            node.elapsed = 0.0
            self._emit(node, TaskEventKind.STARTED)
        started = time.perf_counter()
        try:
            with self._logging(node):
                outcome = await self._step(node)
        except Exception as raised:
            node.elapsed += time.perf_counter() - started
            error = _lease_loss(node.lease, raised) or raised
            await self._release(node)
            # A lapsed lease is not the task's failure: the worker that took it over reports.
            lost = isinstance(error, LeaseLostError)
            self._fail(node, error, "".join(traceback.format_exception(error)), report=not lost)
            return
        node.elapsed += time.perf_counter() - started
        if isinstance(outcome, Suspended):
            await self._suspend(node, outcome)
            return
        if node.lease is not None:
            # Recording the completion is a round trip to the registry, made aside: the
            # slot goes to the next task meanwhile, whose completion may join the request.
            self._aside.add(asyncio.create_task(self._finish(node, node.elapsed)))
            return
        await self._finish(node, node.elapsed)

    async def _finish(self, node: _Node, elapsed: float) -> None:
        """Record a task that ran to its end as built, and ready what waited for it."""
        if not await self._record_completion(node):
            return
        await self._publish_assets(node)
        node.state = _State.BUILT
        self.summary.built.append(node.task)
        self.summary.durations[node.task.id] = elapsed
        self._progress.advance(f"built {node.task.get_name()}")
        self._satisfied(node)

    def _logging(self, node: _Node) -> AbstractContextManager[None]:
        """Capture what the node's run writes into its log (kept across its resumptions);
        on the way out, whatever the outcome, the lines so far go to the registry."""
        if not self._capture:
            return nullcontext()
        if node.log is None:
            build, task = self._build.id, node.task
            node.log = TaskLog(lambda lines: self._registry.task_logs(build, task, lines))
        return _flushing(node.log)

    async def _publish_assets(self, node: _Node) -> None:
        """Hand the assets a completed task publishes to the registry; a task whose
        ``registry_assets`` fails stays built (the failure is logged)."""
        task = node.task
        if not self._capture or type(task).registry_assets is Task.registry_assets:
            return
        try:
            assets = await asyncio.to_thread(task.registry_assets)
        except Exception:
            logger.exception("the assets of %r (%s) could not be made", task, task.id)
            return
        self._registry.task_assets(self._build.id, task, assets)

    async def _record_completion(self, node: _Node) -> bool:
        """Report the node's completion: through its lock when it holds one. False, and the
        node fails, when the lease lapsed while it ran and nothing could be recorded."""
        if node.lease is None or self._locks is None:
            self._emit(node, TaskEventKind.COMPLETED)
            return True
        lease, node.lease = node.lease, None
        event = TaskEvent(self._build.id, node.task, TaskEventKind.COMPLETED)
        # The dependents this completion readies take their leases in the same breath: the
        # registry client sends the calls together, one round trip instead of two a task.
        readied = [
            dependent
            for dependent in node.dependents
            if dependent.waiting_on == 1
            and dependent.state is _State.WAITING
            and dependent.lease is None
        ]
        taking = (self._locking(self._locks.acquire, dependent.task) for dependent in readied)
        recorded, leases = await asyncio.gather(
            self._locking(self._locks.complete, lease, event), asyncio.gather(*taking)
        )
        for dependent, granted in zip(readied, leases, strict=True):
            dependent.lease = granted
        if recorded:
            logger.debug("completed %r (%s) under lock %s", node.task, node.task.id, lease.key)
            return True
        for dependent in readied:
            await self._release(dependent)
        lease.lost = True
        error = lease.lost_error()
        # Not reported: the task is another worker's now, and its record stands.
        self._fail(node, error, "".join(traceback.format_exception(error)), report=False)
        return False

    async def _take_lock(self, node: _Node, locks: BuildLocks) -> bool:
        """Hold the node's lease before its first run (it may hold it already, taken when its
        last dependency completed): True to run it now; False when it was parked (another
        worker holds it) or skipped (another worker completed it)."""
        if node.lease is None:
            node.lease = await self._locking(locks.acquire, node.task)
            if node.lease is None:
                node.state = _State.PARKED
                self._aside.add(asyncio.create_task(self._wait_for_lock(node, locks)))
                return False
        complete = await self._check([node])
        if node.state is _State.FAILED:
            await self._release(node)
            return False
        if complete[0]:
            await self._release(node)
            self._skip_built_elsewhere(node)
            return False
        return True

    async def _wait_for_lock(self, node: _Node, locks: BuildLocks) -> None:
        """Poll a task another worker holds until it is complete (skip it) or its lease is
        ours (ready it), unless the build stops first."""
        while not self._stopping:
            await asyncio.sleep(_LOCK_POLL_SECONDS)
            complete = await self._check([node])
            if node.state is not _State.PARKED:
                return  # its completeness check failed
            if complete[0]:
                self._skip_built_elsewhere(node)
                return
            node.lease = await self._locking(locks.acquire, node.task)
            if node.lease is not None:
                self._enqueue(node)
                return

    async def _locking(self, call: Callable[..., T], *args: Any) -> T:
        """Make a (blocking) lock call on a thread of the scheduler's own: as many may wait
        at once as tasks run, so the registry client can send them together."""
        if self._lock_threads is None:
            self._lock_threads = ThreadPoolExecutor(2 * self._executor.slots + 4, "stardag-lock")
        return await asyncio.get_running_loop().run_in_executor(self._lock_threads, call, *args)

    def _skip_built_elsewhere(self, node: _Node) -> None:
        self._skip(node)
        self._progress.advance(f"[dim]built elsewhere[/] {node.task.get_name()}")

    async def _release(self, node: _Node) -> None:
        if node.lease is not None and self._locks is not None:
            lease, node.lease = node.lease, None
            await self._locking(self._locks.release, lease)

    async def _step(self, node: _Node) -> Outcome:
        """Run the node's task until it finishes or yields tasks it needs."""
        generator, node.generator = node.generator, None
        if inspect.isasyncgen(generator):
            return await _resume_async(generator)
        if inspect.isgenerator(generator):
            return await self._executor.call(resume, generator)
        task = node.task
        if is_async(task):
            result: Any = task.run()
            if inspect.isasyncgen(result):
                return await _resume_async(result)
            await result
            return Finished()
        if self._executor.remote:
            # Outputs written in another process commit unguarded: write-once targets still
            # refuse to replace an output another worker committed.
            remote = await self._executor.call(run_remote, task, self._settings, self._log_level)
            if node.log is not None:
                node.log.extend(remote.lines)
            return remote.result()
        if node.lease is None:
            return await self._executor.call(start, task)
        with commit_guard(node.lease.check):
            return await self._executor.call(start, task)

    async def _suspend(self, node: _Node, outcome: Suspended) -> None:
        """Park a task that yielded tasks it needs until they are built, then resume it."""
        node.state = _State.SUSPENDED
        node.generator = outcome.generator
        await self._discover(outcome.needs, parent=node)
        cycle = _find_cycle([node])
        if cycle:
            error = DependencyCycleError(_describe_cycle(cycle))
            self._fail(node, error, "".join(traceback.format_exception(error)))
            return
        if node.state is _State.SUSPENDED and node.waiting_on == 0:
            self._enqueue(node)

    def _fail(
        self, node: _Node, error: BaseException, formatted: str, *, report: bool = True
    ) -> None:
        node.state = _State.FAILED
        _close(node)
        self.summary.failures.append(TaskFailure(node.task, error, formatted))
        if node.elapsed is not None:
            self.summary.durations[node.task.id] = node.elapsed
        if report:
            self._emit(node, TaskEventKind.FAILED, formatted)
        else:
            logger.warning("failed %r (%s):\n%s", node.task, node.task.id, formatted)
        self._progress.advance(f"[red]failed[/] {node.task.get_name()}")
        if self._fail_fast:
            self._stopping = True
        else:
            self._block(node.dependents)

    def _block(self, nodes: list[_Node]) -> None:
        """Mark ``nodes`` and everything waiting for them as blocked by a failure."""
        stack = list(nodes)
        while stack:
            node = stack.pop()
            if node.state not in _PENDING:
                continue
            if node.state is _State.SUSPENDED:
                # Its run had started: it fails, for a reason that is not its own.
                _close(node)
                error = DependencyFailedError(f"{node.task!r} needed a task that failed")
                node.state = _State.FAILED
                self.summary.failures.append(TaskFailure(node.task, error, repr(error)))
                self._emit(node, TaskEventKind.FAILED, repr(error))
            else:
                node.state = _State.BLOCKED
                self.summary.blocked.append(node.task)
            self._progress.advance(f"[yellow]blocked[/] {node.task.get_name()}")
            stack.extend(node.dependents)

    async def _close_leftovers(self) -> None:
        for node in self._nodes.values():
            if node.state in _PENDING:
                _close(node)
                await self._release(node)
                self.summary.not_run.append(node.task)

    def _emit(self, node: _Node, kind: TaskEventKind, error: str | None = None) -> None:
        if error is None:
            logger.debug("%s %r (%s)", kind.value, node.task, node.task.id)
        else:
            logger.warning("failed %r (%s):\n%s", node.task, node.task.id, error)
        self._registry.task_event(TaskEvent(self._build.id, node.task, kind, error=error))


async def _resume_async(generator: AsyncGenerator[Any, Any]) -> Outcome:
    try:
        yielded = await anext(generator)
    except StopAsyncIteration:
        return Finished()
    return Suspended(flatten_tasks(yielded), generator)  # type: ignore[arg-type]


@contextmanager
def _flushing(log: TaskLog) -> Iterator[None]:
    try:
        with logging_to(log):
            yield
    finally:
        log.flush()


def _found(node: _Node) -> FoundTask:
    """A node as the registry hears of it: with its dependencies, unless discovery stopped at
    it (complete, or failing before its dependencies were known)."""
    if node.state in (_State.COMPLETE, _State.FAILED):
        return FoundTask(node.task, None)
    return FoundTask(node.task, tuple(child.task for child in node.children))


def _lease_loss(lease: Lease | None, error: Exception) -> LeaseLostError | None:
    """The lapsed lease behind a task's failure, if it ran under one: an output another
    worker committed meanwhile, say, is a symptom of losing the lease, not the cause."""
    if isinstance(error, LeaseLostError):
        return error
    if lease is None or lease.live:
        return None
    lost = lease.lost_error()
    lost.__cause__ = error
    return lost


def _close(node: _Node) -> None:
    generator, node.generator = node.generator, None
    if inspect.isgenerator(generator):
        generator.close()


def _find_cycle(starts: Iterable[_Node]) -> list[_Node] | None:
    """A dependency cycle among the unfinished nodes reachable from ``starts``, if any."""
    finished: set[_Node] = set()
    for start_node in starts:
        if start_node in finished or start_node.state in _SATISFIED:
            continue
        path: list[_Node] = [start_node]
        on_path: set[_Node] = {start_node}
        stack = [iter(start_node.children)]
        while stack:
            for child in stack[-1]:
                if child.state in _SATISFIED or child in finished:
                    continue
                if child in on_path:
                    return [*path[path.index(child) :], child]
                path.append(child)
                on_path.add(child)
                stack.append(iter(child.children))
                break
            else:
                stack.pop()
                done = path.pop()
                on_path.discard(done)
                finished.add(done)
    return None


def _describe_cycle(cycle: list[_Node]) -> str:
    return "dependency cycle: " + " -> ".join(repr(node.task) for node in cycle)
