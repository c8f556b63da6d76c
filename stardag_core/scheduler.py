"""The build scheduler: one event loop that discovers the graph and runs what is missing.

Discovery walks down from the requested tasks a frontier at a time, checking the
completeness of a whole frontier at once (one batched existence check for tasks whose
``complete`` is the default, bounded concurrency for the others), and stops at complete
tasks. Each task is a node, keyed by id and checked once. A node counts the dependencies
it still waits for; when the count reaches zero it joins the ready queue, and the loop
hands ready nodes to the executor, as many as it has slots. Finishing a node counts down
its dependents: the work per task is constant, so a build is linear in its size. A build
cancelled (Ctrl+C, or by its caller) starts nothing more: its runs are cancelled, and each
task that started and did not finish reports its cancellation.

With build locks, a ready task runs only once this worker holds its lease. A task another
worker holds is parked, off the executor's slots, and polled until it is complete (skipped
here) or free (taken here); a task found complete right after taking its lease is skipped
too. Its outputs commit only while the lease is live, and its completion is recorded
through the lock, which refuses a lapsed lease.

Round trips to the registry stay off the path from one task to the next. Leases are taken
ahead: a task is leased once each task it waits for is leased here too (asked for, on trust:
should one of them be refused, the leases taken on its account are given back), as far
ahead as the executor's slots and the recent pace allow, ready tasks included, so that
other workers find the rest free. A lease is checked for completeness when granted, with
the others of its turn.
And a task whose outputs committed under a live lease readies its dependents at once, while
its completion is recorded aside: should the registry refuse the record (the lease lapsed
after the commit), the task fails here, its outputs stand, and the worker that took its
lease over finds it complete.
"""

import asyncio
import enum
import inspect
import logging
import time
import traceback
from collections import deque
from collections.abc import AsyncGenerator, Coroutine, Generator, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, Literal
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

logger = logging.getLogger("stardag.build")

_COMPLETENESS_CONCURRENCY = 64
_LOCK_POLL_SECONDS = 0.25
_LEASE_HORIZON_SECONDS = 0.1
"""How far ahead leases are taken, beyond the executor's slots: as many tasks as were done
in this many seconds lately. Enough to cover a lease's round trip when tasks take
milliseconds; next to nothing when they take seconds, so other workers find the rest free."""


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
_TO_RUN = frozenset({_State.WAITING, _State.READY, _State.PARKED, _State.RUNNING})


class _Node:
    __slots__ = (
        "children",
        "dependents",
        "elapsed",
        "generator",
        "lease",
        "leasing",
        "log",
        "state",
        "task",
        "unleased",
        "vouched",
        "waiting_on",
    )

    def __init__(self, task: Task) -> None:
        self.task = task
        self.state = _State.CHECKING
        self.waiting_on = 0
        # For leases taken ahead: the children neither satisfied nor leased here, whether
        # this node was counted as either by its dependents, and its lease on its way.
        self.unleased = 0
        self.vouched = False
        self.leasing: asyncio.Task[None] | None = None
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
        # Nodes whose lease may be taken ahead, and the nodes holding (or taking) a lease
        # they have not started running under.
        self._leasable: deque[_Node] = deque()
        self._leased_ahead: set[_Node] = set()
        self._done_lately: deque[float] = deque()
        # The coroutines under way: task runs, which hold the executor's slots, and waits
        # aside, which do not (leases, parked tasks, completions recorded under a lock).
        # Each one finished wakes the run loop, which looks at that one only.
        self._running: set[asyncio.Task[None]] = set()
        self._aside: set[asyncio.Task[None]] = set()
        self._finished: list[asyncio.Task[None]] = []
        self._woken = asyncio.Event()
        self._stopping = False
        self._custom_checks = asyncio.Semaphore(_COMPLETENESS_CONCURRENCY)
        # Nodes whose completeness is to be checked again, in one batch (see `_recheck`).
        self._rechecking: list[_Node] = []
        self._rechecked: asyncio.Task[dict[_Node, bool]] | None = None

    async def run(self, roots: Sequence[Task]) -> BuildSummary:
        """Build ``roots``; ``DependencyCycleError`` before anything runs if they form a cycle."""
        cycle = _find_cycle(await self._discover(roots))
        if cycle:
            raise DependencyCycleError(_describe_cycle(cycle))
        with capturing() if self._capture else nullcontext():
            try:
                await self._run_ready()
            except asyncio.CancelledError:
                await self._cancel_all()
                raise
        await self._close_leftovers()
        return self.summary

    async def _cancel_all(self) -> None:
        """The build was cancelled: cancel every run and every wait aside, and let them end,
        so that the tasks report their cancellation before the build reports its own."""
        logger.warning(
            "the build was cancelled: no task starts now, and the tasks running finish what "
            "they run first (a thread cannot be stopped)"
        )
        children = self._running | self._aside
        for child in children:
            child.cancel()
        await asyncio.gather(*children, return_exceptions=True)
        for node in self._nodes.values():
            if node.state is _State.SUSPENDED:  # started, waiting for the tasks it yielded
                _close(node)
                self._emit(node, TaskEventKind.CANCELLED)

    async def _run_ready(self) -> None:
        """Hand ready nodes to the executor until none is ready, running or aside."""
        while True:
            if self._locks is not None:
                self._take_leases_ahead(self._locks)
            while self._ready and len(self._running) < self._executor.slots and not self._stopping:
                node = self._ready.popleft()
                if node.state is _State.READY:
                    node.state = _State.RUNNING
                    self._start(self._running, self._execute(node))
            if not self._running and not self._aside:
                break
            await self._woken.wait()
            self._woken.clear()
            finished, self._finished = self._finished, []
            for done in finished:
                done.result()  # the scheduler's own bugs surface here, not in a task's failure

    def _start(
        self, among: set[asyncio.Task[None]], work: Coroutine[Any, Any, None]
    ) -> asyncio.Task[None]:
        """Run ``work`` as one of ``among`` (the runs, or the waits aside) until it ends."""
        task = asyncio.create_task(work)
        among.add(task)
        task.add_done_callback(lambda _: self._ended(among, task))
        return task

    def _ended(self, among: set[asyncio.Task[None]], task: asyncio.Task[None]) -> None:
        among.discard(task)
        self._finished.append(task)
        self._woken.set()

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
        if not child.vouched:
            parent.unleased += 1
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

    async def _recheck(self, node: _Node) -> bool:
        """Whether the node's task is complete now (another worker may have built it),
        checked in one batch with every node that asks in the same turn of the event loop:
        under locks, each task is checked again once leased, and they come in bursts."""
        self._rechecking.append(node)
        if self._rechecked is None or self._rechecked.done():
            self._rechecked = asyncio.create_task(self._recheck_batch())
        return (await asyncio.shield(self._rechecked))[node]

    async def _recheck_batch(self) -> dict[_Node, bool]:
        await asyncio.sleep(0)  # the turn's other nodes join
        nodes, self._rechecking = self._rechecking, []
        self._rechecked = None
        return dict(zip(nodes, await self._check(nodes), strict=True))

    def _enqueue(self, node: _Node) -> None:
        node.state = _State.READY
        self._ready.append(node)
        if node.unleased == 0 and self._locks is not None:
            self._leasable.append(node)

    def _satisfied(self, node: _Node) -> None:
        if self._locks is not None:  # what leases are taken ahead for
            self._done_lately.append(time.monotonic())
            self._vouch(node)
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
        except asyncio.CancelledError:
            self._emit(node, TaskEventKind.CANCELLED)
            raise
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
            # Its outputs committed under a live lease: what waits for it may run now, while
            # the completion is recorded aside (a round trip, whose slot goes to the next task).
            lease, node.lease = node.lease, None
            self._built(node, node.elapsed)
            self._start(self._aside, self._record_under_lease(node, lease))
            return
        self._emit(node, TaskEventKind.COMPLETED)
        await self._publish_assets(node)
        self._built(node, node.elapsed)

    def _built(self, node: _Node, elapsed: float) -> None:
        """Count a task that ran to its end as built, and ready what waited for it."""
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

    async def _record_under_lease(self, node: _Node, lease: Lease) -> None:
        """Record a built node's completion through its lock. Should the lease have lapsed
        since its outputs committed, nothing is recorded and the node fails here instead:
        the worker that took the lease over finds its outputs and skips it."""
        assert self._locks is not None
        event = TaskEvent(self._build.id, node.task, TaskEventKind.COMPLETED)
        if await self._locks.complete(lease, event):
            logger.debug("completed %r (%s) under lock %s", node.task, node.task.id, lease.key)
            await self._publish_assets(node)
            return
        lease.lost = True
        error = lease.lost_error()
        self.summary.built.remove(node.task)
        self._progress.grow(1)  # the bar counted it built: failing is its second outcome
        # Not reported: the task is another worker's now, and its record stands.
        self._fail(node, error, "".join(traceback.format_exception(error)), report=False)

    def _vouch(self, node: _Node) -> None:
        """Count the node, once, as satisfied or leased here: a dependent each of whose
        children counts may take its lease ahead."""
        if node.vouched:
            return
        node.vouched = True
        for dependent in node.dependents:
            dependent.unleased -= 1
            if dependent.unleased == 0:
                self._leasable.append(dependent)

    def _take_leases_ahead(self, locks: BuildLocks) -> None:
        """Ask for the leases of leasable nodes, oldest first, as far as the budget goes:
        the executor's slots and the recent pace. Ready nodes count against it like the
        others: workers started together on a wide layer of slow tasks would otherwise find
        all of it leased by the first one up, and wait while it worked through them."""
        lately = time.monotonic() - _LEASE_HORIZON_SECONDS
        while self._done_lately and self._done_lately[0] < lately:
            self._done_lately.popleft()
        budget = self._executor.slots + len(self._done_lately)
        while self._leasable and len(self._leased_ahead) < budget and not self._stopping:
            node = self._leasable.popleft()
            if (
                node.state in (_State.WAITING, _State.READY)
                and node.unleased == 0
                and node.lease is None
                and node.leasing is None
            ):
                self._leased_ahead.add(node)
                node.leasing = self._start(self._aside, self._take_lease_ahead(node, locks))
                self._vouch(node)  # on trust: its dependents may ask for theirs already

    async def _take_lease_ahead(self, node: _Node, locks: BuildLocks) -> None:
        try:
            lease = await locks.acquire(node.task)
            if lease is None:  # another worker holds it: the node parks once ready
                self._withdraw(node, locks)
            elif node.unleased > 0:
                # A task it waits for went to another worker meanwhile: that worker may
                # build this one too, and should find it free.
                self._withdraw(node, locks)
                await locks.release(lease)
            elif await self._holds(node, lease, locks):
                node.lease = lease  # running: waiting in `_take_lock` for this lease
        finally:
            node.leasing = None
            if node.lease is None:
                self._leased_ahead.discard(node)

    async def _holds(self, node: _Node, lease: Lease, locks: BuildLocks) -> bool:
        """Whether the node is to run under the lease just granted: not if another worker
        completed it before (skipped; the check is batched with the other grants of the
        turn), nor once it failed or was blocked; the lease is given back then."""
        complete = await self._recheck(node)
        if not complete and node.state in _TO_RUN:
            return True
        await locks.release(lease)
        if complete and node.state in _TO_RUN:
            self._skip_built_elsewhere(node)
        return False

    def _withdraw(self, node: _Node, locks: BuildLocks) -> None:
        """Take back the trust that the node would be leased here: the leases taken ahead
        on its account, granted and not started, are given back, and so on up."""
        stack = [node]
        while stack:
            withdrawn = stack.pop()
            if not withdrawn.vouched or withdrawn.state in _SATISFIED:
                continue
            withdrawn.vouched = False
            for dependent in withdrawn.dependents:
                dependent.unleased += 1
                if dependent in self._leased_ahead and dependent.lease is not None:
                    lease, dependent.lease = dependent.lease, None
                    self._leased_ahead.discard(dependent)
                    self._start(self._aside, locks.release(lease))
                    stack.append(dependent)

    async def _take_lock(self, node: _Node, locks: BuildLocks) -> bool:
        """Hold the node's lease before its first run (it may hold it already, taken
        ahead): True to run it now; False when it was parked (another worker holds it) or
        skipped (another worker completed it)."""
        if node.leasing is not None:
            await asyncio.shield(node.leasing)
            if node.state is not _State.RUNNING:
                return False  # complete, or its completeness check failed
        self._leased_ahead.discard(node)
        if node.lease is not None and node.lease.live:
            return True
        lease = await locks.acquire(node.task)
        if lease is None:
            node.lease = None
            node.state = _State.PARKED
            self._start(self._aside, self._wait_for_lock(node, locks))
            return False
        self._vouch(node)
        node.lease = lease if await self._holds(node, lease, locks) else None
        return node.lease is not None

    async def _wait_for_lock(self, node: _Node, locks: BuildLocks) -> None:
        """Poll a task another worker holds until it is complete (skip it) or its lease is
        ours (ready it), unless the build stops first."""
        while not self._stopping:
            await asyncio.sleep(_LOCK_POLL_SECONDS)
            complete = await self._recheck(node)
            if node.state is not _State.PARKED:
                return  # its completeness check failed
            if complete:
                self._skip_built_elsewhere(node)
                return
            lease = await locks.acquire(node.task)
            if lease is not None:
                self._vouch(node)
                if await self._holds(node, lease, locks):
                    node.lease = lease
                    self._enqueue(node)
                return

    def _skip_built_elsewhere(self, node: _Node) -> None:
        self._skip(node)
        self._progress.advance(f"[dim]built elsewhere[/] {node.task.get_name()}")

    async def _release(self, node: _Node) -> None:
        if node.lease is not None and self._locks is not None:
            lease, node.lease = node.lease, None
            await self._locks.release(lease)

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
                self._leased_ahead.discard(node)
            if node.lease is not None:  # held ahead, or by a suspended run
                self._start(self._aside, self._release(node))
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
