"""Building: only what is missing runs, in dependency order, on every executor."""

import asyncio
import logging
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncGenerator, Generator, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from uuid import UUID

import pytest

import stardag_core as sd
from tests.core.examples.pipeline import (
    Add,
    Chatty,
    Grumpy,
    Mute,
    Number,
    SumOfChain,
    WhereRan,
    layered,
)

RUNS: list[tuple[str, float, float]] = []
RUNS_LOCK = threading.Lock()


class Timed(sd.AutoTask[str]):
    """Records when it ran; needs the tasks it is given."""

    label: str
    after: tuple[sd.TaskLoads[str], ...] = ()

    def run(self) -> None:
        started = time.perf_counter()
        time.sleep(0.01)
        with RUNS_LOCK:
            RUNS.append((self.label, started, time.perf_counter()))
        self.output().save(self.label)


class Broken(sd.AutoTask[int]):
    def run(self) -> None:
        raise RuntimeError("disk on fire")


class Needs(sd.AutoTask[int]):
    upstream: sd.TaskLoads[int]

    def run(self) -> None:
        self.output().save(self.upstream.output().load() + 1)


class CycleA(sd.AutoTask[int]):
    def requires(self) -> sd.TaskStruct:
        return CycleB()

    def run(self) -> None:
        self.output().save(1)


class CycleB(sd.AutoTask[int]):
    def requires(self) -> sd.TaskStruct:
        return CycleA()

    def run(self) -> None:
        self.output().save(2)


class YieldsItsParent(sd.AutoTask[int]):
    def run(self) -> Iterator[sd.TaskStruct]:
        yield NeedsYielder()
        self.output().save(0)


class NeedsYielder(sd.AutoTask[int]):
    def requires(self) -> sd.TaskStruct:
        return YieldsItsParent()

    def run(self) -> None:
        self.output().save(1)


class AsyncNumber(sd.AutoTask[int]):
    value: int

    async def run(self) -> None:
        await asyncio.sleep(0.01)
        self.output().save(self.value)


class AsyncDynamic(sd.AutoTask[int]):
    n: int

    async def run(self) -> AsyncGenerator[sd.TaskStruct, None]:
        numbers = [AsyncNumber(value=i) for i in range(self.n)]
        yield numbers
        self.output().save(sum(number.load() for number in numbers))


class CountedCompleteness(sd.AutoTask[int]):
    checks: int = 0

    def complete(self) -> bool:
        CHECKED.append(self.id)
        return super().complete()

    def run(self) -> None:
        self.output().save(1)


CHECKED: list[object] = []


class RequiresRaises(sd.AutoTask[int]):
    def requires(self) -> sd.TaskStruct:
        raise ValueError("bad requirements")

    def run(self) -> None:
        self.output().save(1)


class Recorder:
    """A registry that keeps what it hears."""

    def __init__(self) -> None:
        self.builds: list[tuple[str, sd.BuildRecord, sd.BuildOutcome | None]] = []
        self.events: list[sd.TaskEvent] = []
        self.found: list[sd.FoundTask] = []
        self.logs: dict[str, list[sd.LogLine]] = {}
        self.assets: dict[str, list[sd.RegistryAsset]] = {}

    def build_started(self, build: sd.BuildRecord) -> None:
        self.builds.append(("started", build, None))

    def tasks_found(self, build: sd.BuildRecord, found: Sequence[sd.FoundTask]) -> None:
        self.found.extend(found)

    def task_event(self, event: sd.TaskEvent) -> None:
        self.events.append(event)

    def task_logs(self, build_id: UUID, task: sd.Task, lines: Sequence[sd.LogLine]) -> None:
        self.logs.setdefault(repr(task), []).extend(lines)

    def task_assets(
        self, build_id: UUID, task: sd.Task, assets: Sequence[sd.RegistryAsset]
    ) -> None:
        self.assets.setdefault(task.get_name(), []).extend(assets)

    def build_finished(self, build: sd.BuildRecord, outcome: sd.BuildOutcome, at: datetime) -> None:
        self.builds.append(("finished", build, outcome))


@pytest.fixture(autouse=True)
def _clear_records() -> None:
    RUNS.clear()
    CHECKED.clear()


def test_order_respects_dependencies_on_threads(local_root: str) -> None:
    a, b = Timed(label="a"), Timed(label="b")
    c = Timed(label="c", after=(a, b))
    d = Timed(label="d", after=(c, a))
    summary = sd.build(d, executor=sd.ThreadExecutor(4))
    assert summary.ok
    ran = {label: (start, end) for label, start, end in RUNS}
    assert ran["c"][0] >= max(ran["a"][1], ran["b"][1])
    assert ran["d"][0] >= ran["c"][1]
    assert len(summary.built) == 4
    assert set(summary.durations) == {task.id for task in summary.built}


def test_complete_tasks_are_skipped_and_never_run(local_root: str) -> None:
    a = Timed(label="a")
    sd.build(a)
    RUNS.clear()
    summary = sd.build(Timed(label="b", after=(a,)))
    assert [label for label, _, _ in RUNS] == ["b"]
    assert summary.skipped == [a]
    again = sd.build(Timed(label="b", after=(a,)))
    assert again.built == []
    assert len(again.skipped) == 1
    assert repr(again) == "<BuildSummary skipped=1>"


def test_each_task_is_checked_once_per_build(local_root: str) -> None:
    shared = CountedCompleteness()
    sd.build(Needs(upstream=shared), Needs(upstream=Needs(upstream=shared)))
    assert [shared.id] == CHECKED


def test_shared_dependencies_build_once(local_root: str) -> None:
    roots = layered(width=5, depth=4)
    summary = sd.build(*roots)
    assert summary.counts == {"built": 25, "skipped": 0, "failed": 0, "blocked": 0, "not_run": 0}
    values = list(range(5))
    for _ in range(4):
        values = [values[i] + values[(i + 1) % 5] for i in range(5)]
    assert [root.load() for root in roots] == values


def test_fail_fast_stops_starting_tasks(local_root: str) -> None:
    summary = sd.build(
        Needs(upstream=Broken()), Timed(label="independent"), executor=sd.InlineExecutor()
    )
    assert [failure.task for failure in summary.failures] == [Broken()]
    assert "disk on fire" in summary.failures[0].traceback
    assert {type(task).__name__ for task in summary.not_run} <= {"Needs", "Timed"}
    assert not summary.ok
    with pytest.raises(sd.BuildFailedError, match=r"1 task\(s\) failed:\n  Broken\(\)"):
        summary.raise_on_failure()


def test_continue_mode_builds_the_independent_branch(local_root: str) -> None:
    blocked = Needs(upstream=Needs(upstream=Broken()))
    independent = Timed(label="independent")
    summary = sd.build(blocked, independent, fail_mode="continue", executor=sd.InlineExecutor())
    assert independent.complete()
    assert summary.built == [independent]
    assert summary.blocked == [Needs(upstream=Broken()), blocked]
    assert summary.counts["failed"] == 1
    with pytest.raises(sd.BuildFailedError, match="2 task\\(s\\) blocked by a failed dependency"):
        summary.raise_on_failure()


def test_requires_that_raises_fails_the_task(local_root: str) -> None:
    summary = sd.build(Needs(upstream=RequiresRaises()), fail_mode="continue")
    assert [f.task for f in summary.failures] == [RequiresRaises()]
    assert "bad requirements" in summary.failures[0].traceback
    assert summary.blocked == [Needs(upstream=RequiresRaises())]


def test_cycle_is_rejected_naming_the_cycle(local_root: str) -> None:
    with pytest.raises(sd.DependencyCycleError, match=r"CycleA\(\) -> CycleB\(\) -> CycleA\(\)"):
        sd.build(CycleA())
    assert not CycleA().complete()


def test_dynamic_cycle_fails_the_yielding_task(local_root: str) -> None:
    summary = sd.build(YieldsItsParent())
    [failure] = summary.failures
    assert isinstance(failure.error, sd.DependencyCycleError)
    assert "YieldsItsParent() -> NeedsYielder() -> YieldsItsParent()" in str(failure.error)


@pytest.mark.parametrize("executor", [sd.InlineExecutor(), sd.ThreadExecutor(3)], ids=repr)
def test_dynamic_dependencies_with_their_own_requirements(
    local_root: str, executor: sd.Executor
) -> None:
    task = SumOfChain(n=3)
    summary = sd.build(task, executor=executor)
    summary.raise_on_failure()
    assert task.load() == 1 + 3 + 5
    assert summary.counts["built"] == 1 + 3 + 4  # the task, three sums, four numbers


def test_async_tasks_run_on_the_event_loop(local_root: str) -> None:
    task = AsyncDynamic(n=4)
    summary = sd.build(task, executor=sd.ThreadExecutor(2))
    summary.raise_on_failure()
    assert task.load() == 6
    assert summary.counts["built"] == 5


async def test_build_async_inside_an_event_loop(local_root: str) -> None:
    summary = await sd.build_async(Needs(upstream=Number(value=1)))
    assert summary.ok
    blocking = sd.build(Needs(upstream=Number(value=2)))  # from inside a loop: a helper thread
    assert blocking.ok
    assert Needs(upstream=Number(value=2)).load() == 3


def test_registry_hears_every_step(local_root: str) -> None:
    Number(value=0).run()
    registry = Recorder()
    sd.build(
        Add(left=Number(value=0), right=Number(value=1)),
        Needs(upstream=Broken()),
        registry=registry,
        fail_mode="continue",
    )
    assert [(kind, outcome) for kind, _, outcome in registry.builds] == [
        ("started", None),
        ("finished", sd.BuildOutcome.FAILED),
    ]
    by_task = {(type(e.task).__name__, e.kind) for e in registry.events}
    assert ("Number", sd.TaskEventKind.SKIPPED) in by_task
    assert ("Number", sd.TaskEventKind.STARTED) in by_task
    assert ("Add", sd.TaskEventKind.COMPLETED) in by_task
    assert ("Broken", sd.TaskEventKind.FAILED) in by_task
    failed = next(e for e in registry.events if e.kind is sd.TaskEventKind.FAILED)
    assert failed.error is not None
    assert "disk on fire" in failed.error
    assert all(e.build_id == registry.builds[0][1].id for e in registry.events)
    assert all(e.at.tzinfo is not None for e in registry.events)
    # The graph as the build found it: what each task needs, none for the complete one.
    needs = {repr(item.task): item.needs for item in registry.found}
    assert needs == {
        repr(Add(left=Number(value=0), right=Number(value=1))): (
            Number(value=0),
            Number(value=1),
        ),
        repr(Needs(upstream=Broken())): (Broken(),),
        repr(Number(value=0)): None,
        repr(Number(value=1)): (),
        repr(Broken()): (),
    }


class SlowToRecord(Recorder):
    """A registry holding build locks in memory, slow to record the first completion: it
    answers once a second one arrives (or after 10 seconds)."""

    def __init__(self) -> None:
        super().__init__()
        self.completions: list[str] = []
        self.first_waited_out: bool | None = None
        self._second = asyncio.Event()

    def build_locks(self, build: sd.BuildRecord, ttl: float) -> "SlowToRecord":
        return self

    async def acquire(self, task: sd.Task) -> sd.Lease:
        return sd.Lease(f"task:{task.id}", "here", 1, time.monotonic() + 60)

    async def release(self, lease: sd.Lease) -> None:
        raise AssertionError(f"nothing fails here, yet {lease.key} was released")

    async def complete(self, lease: sd.Lease, event: sd.TaskEvent) -> bool:
        self.completions.append(event.task.get_name())
        if len(self.completions) == 1:
            try:
                await asyncio.wait_for(self._second.wait(), 10)
                self.first_waited_out = False
            except TimeoutError:
                self.first_waited_out = True
        else:
            self._second.set()
        return True

    def close(self) -> None:
        """Nothing to stop."""


def test_a_completion_being_recorded_under_lock_holds_no_executor_slot(
    local_root: str,
) -> None:
    registry = SlowToRecord()
    summary = sd.build(
        Timed(label="a"),
        Timed(label="b"),
        executor=sd.InlineExecutor(),
        registry=registry,
        locks=True,
    )
    assert summary.ok
    # The inline executor has one slot: had the first completion kept it, the second task
    # could not have run (and completed) before the registry answered.
    assert registry.first_waited_out is False
    assert len(registry.completions) == 2
    assert [label for label, _, _ in RUNS] == ["a", "b"]


class LocksInMemory(Recorder):
    """A registry holding build locks in memory, keeping the calls made to them by label.
    Another worker holds the tasks labelled in `elsewhere` (and builds them as soon as they
    are asked for); the completions labelled in `lapsed` are refused once every other one
    was recorded (their leases lapsed after their outputs committed)."""

    def __init__(self, elsewhere: Sequence[str] = (), lapsed: Sequence[str] = ()) -> None:
        super().__init__()
        self.calls: list[tuple[str, str]] = []
        self.held: set[str] = set()
        self.elsewhere = set(elsewhere)
        self.lapsed = set(lapsed)
        self._labels: dict[str, str] = {}  # lock key -> label
        self._others_recorded = asyncio.Event()

    def build_locks(self, build: sd.BuildRecord, ttl: float) -> "LocksInMemory":
        return self

    async def acquire(self, task: sd.Task) -> sd.Lease | None:
        label = self._label(task)
        self.calls.append(("acquire", label))
        await asyncio.sleep(0)  # answered later, as a registry would
        if label in self.elsewhere:
            assert isinstance(task, Timed)
            if not task.output().exists():
                task.output().save(f"{label} built elsewhere")
            return None
        self.held.add(f"task:{task.id}")
        return sd.Lease(f"task:{task.id}", "here", 1, time.monotonic() + 60)

    async def release(self, lease: sd.Lease) -> None:
        self.calls.append(("release", self._labels[lease.key]))
        self.held.discard(lease.key)

    async def complete(self, lease: sd.Lease, event: sd.TaskEvent) -> bool:
        label = self._label(event.task)
        self.calls.append(("complete", label))
        self.held.discard(lease.key)
        if label not in self.lapsed:
            recorded = {done for kind, done in self.calls if kind == "complete"}
            if recorded >= set(self._labels.values()) - self.lapsed:
                self._others_recorded.set()
            return True
        await asyncio.wait_for(self._others_recorded.wait(), 10)
        return False

    def close(self) -> None:
        """Nothing to stop."""

    def _label(self, task: sd.Task) -> str:
        label = task.label if isinstance(task, Timed) else repr(task)
        self._labels[f"task:{task.id}"] = label
        return label


def test_leases_are_taken_ahead_of_the_tasks_they_wait_for(local_root: str) -> None:
    registry = LocksInMemory()
    first = Timed(label="a")
    last = Timed(label="c", after=(Timed(label="b", after=(first,)),))
    summary = sd.build(last, registry=registry, locks=True)
    assert summary.ok
    # The whole chain was leased before its first task's completion was recorded.
    assert registry.calls.index(("acquire", "c")) < registry.calls.index(("complete", "a"))
    assert [call for call in registry.calls if call[0] == "acquire"] == [
        ("acquire", "a"),
        ("acquire", "b"),
        ("acquire", "c"),
    ]


def test_a_lease_taken_ahead_is_given_back_when_another_worker_holds_what_it_waits_for(
    local_root: str,
) -> None:
    registry = LocksInMemory(elsewhere=["a"])
    first = Timed(label="a")
    summary = sd.build(Timed(label="b", after=(first,)), registry=registry, locks=True)
    summary.raise_on_failure()
    assert summary.built == [Timed(label="b", after=(first,))]
    assert summary.skipped == [first]
    # b was leased on trust beside a, given back once a was refused, and leased again
    # when a turned out built elsewhere.
    calls_of_b = [kind for kind, label in registry.calls if label == "b"]
    assert calls_of_b == ["acquire", "release", "acquire", "complete"]


def test_a_completion_refused_after_its_dependents_started_fails_only_its_task(
    local_root: str,
) -> None:
    registry = LocksInMemory(lapsed=["a"])
    RUNS.clear()
    first = Timed(label="a")
    last = Timed(label="b", after=(first,))
    summary = sd.build(last, registry=registry, locks=True)
    assert [failure.task for failure in summary.failures] == [first]
    assert isinstance(summary.failures[0].error, sd.LeaseLostError)
    # b ran on a's output, committed while a's lease was live, and stays built.
    assert summary.built == [last]
    assert last.output().load() == "b"
    assert sorted(label for label, _, _ in RUNS) == ["a", "b"]


@pytest.mark.parametrize("fail_mode", ["fail_fast", "continue"])
def test_a_failed_build_under_locks_leaves_no_lease_held(
    local_root: str, fail_mode: sd.FailMode
) -> None:
    registry = LocksInMemory()
    # Leases are taken ahead for the tasks above the broken one, and for a chain beside it.
    summary = sd.build(
        Needs(upstream=Needs(upstream=Broken())),
        Timed(label="y", after=(Timed(label="x", after=(Timed(label="w"),)),)),
        registry=registry,
        locks=True,
        fail_mode=fail_mode,
    )
    assert [type(failure.task) for failure in summary.failures] == [Broken]
    acquired = {label for kind, label in registry.calls if kind == "acquire"}
    assert repr(Needs(upstream=Broken())) in acquired
    assert registry.held == set()


def test_registry_hears_of_tasks_a_run_yields(local_root: str) -> None:
    registry = Recorder()
    sd.build(AsyncDynamic(n=2), registry=registry)
    found = [repr(item.task) for item in registry.found]
    assert found[0] == repr(AsyncDynamic(n=2))
    assert sorted(found[1:]) == [repr(AsyncNumber(value=0)), repr(AsyncNumber(value=1))]


def test_progress_bar_when_asked(local_root: str, capsys: pytest.CaptureFixture[str]) -> None:
    sd.build(Needs(upstream=Number(value=5)), progress=True)
    assert "stardag" in capsys.readouterr().err


def test_process_executor_builds_what_inline_builds(tmp_path: Path) -> None:
    with sd.use_settings(sd.Settings(target_roots={"default": str(tmp_path / "inline")})):
        inline = sd.build(*layered(width=4, depth=3), executor=sd.InlineExecutor())
        expected = [root.load() for root in layered(width=4, depth=3)]
    with sd.use_settings(sd.Settings(target_roots={"default": str(tmp_path / "processes")})):
        summary = sd.build(
            *layered(width=4, depth=3), WhereRan(tag="p"), executor=sd.ProcessExecutor(2)
        )
        summary.raise_on_failure()
        assert [root.load() for root in layered(width=4, depth=3)] == expected
        assert WhereRan(tag="p").load() != os.getpid()
    assert summary.counts["built"] == inline.counts["built"] + 1


def test_process_executor_reruns_dynamic_tasks(tmp_path: Path) -> None:
    with sd.use_settings(sd.Settings(target_roots={"default": str(tmp_path)})):
        task = SumOfChain(n=3)
        summary = sd.build(task, executor=sd.ProcessExecutor(2))
        summary.raise_on_failure()
        assert task.load() == 9
        assert summary.counts["built"] == 8


def test_dask_executor_on_a_local_cluster_builds_what_inline_builds(tmp_path: Path) -> None:
    with sd.use_settings(sd.Settings(target_roots={"default": str(tmp_path / "inline")})):
        sd.build(*layered(width=3, depth=3), SumOfChain(n=2), executor=sd.InlineExecutor())
        expected = [t.load() for t in [*layered(width=3, depth=3), SumOfChain(n=2)]]
    with sd.use_settings(sd.Settings(target_roots={"default": str(tmp_path / "dask")})):
        summary = sd.build(
            *layered(width=3, depth=3),
            SumOfChain(n=2),
            WhereRan(tag="dask"),
            executor=sd.DaskExecutor(n_workers=2),
        )
        summary.raise_on_failure()
        assert [t.load() for t in [*layered(width=3, depth=3), SumOfChain(n=2)]] == expected
        assert WhereRan(tag="dask").load() != os.getpid()


def test_dask_refuses_task_classes_from_the_main_script() -> None:
    class Scripted(sd.AutoTask[int]):
        pass

    Scripted.__module__ = "__main__"
    with pytest.raises(sd.StardagError, match="defined in the __main__ script"):
        asyncio.run(sd.DaskExecutor().call(print, Scripted()))


def test_dask_executor_on_a_running_scheduler(tmp_path: Path) -> None:
    from distributed import LocalCluster

    with (
        LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster,
        sd.use_settings(sd.Settings(target_roots={"default": str(tmp_path)})),
    ):
        executor = sd.DaskExecutor(cluster.scheduler_address)
        summary = sd.build(*layered(width=2, depth=2), executor=executor)
        summary.raise_on_failure()
        assert executor.slots == 2
        assert summary.counts["built"] == 6


def test_failures_are_logged_with_their_traceback(
    local_root: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="stardag.build"):
        sd.build(Needs(upstream=Broken()), Number(value=7), fail_mode="continue")
    failure = next(r for r in caplog.records if r.levelno == logging.WARNING)
    assert "failed Broken()" in failure.getMessage()
    assert "disk on fire" in failure.getMessage()
    assert any("completed Number(value=7)" in r.getMessage() for r in caplog.records)


def test_build_explains_wrong_arguments(local_root: str) -> None:
    with pytest.raises(
        TypeError, match=r"build\(\) takes tasks, got \[Number\(value=1\)\] \(list\)"
    ):
        sd.build([Number(value=1)])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fail_mode must be 'fail_fast' or 'continue', got 'keep'"):
        sd.build(Number(value=1), fail_mode="keep")  # type: ignore[arg-type]
    assert sd.build().counts == {"built": 0, "skipped": 0, "failed": 0, "blocked": 0, "not_run": 0}


def test_build_on_every_kind_of_target_root(any_root: str) -> None:
    roots = layered(width=3, depth=2)
    first = sd.build(*roots)
    first.raise_on_failure()
    assert first.counts["built"] == 9
    again = sd.build(*roots)  # completeness of the whole frontier in one batched check
    assert again.counts == {"built": 0, "skipped": 3, "failed": 0, "blocked": 0, "not_run": 0}
    assert [root.load() for root in roots] == [4, 5, 3]


class BrokenAssets(sd.AutoTask[int]):
    def run(self) -> None:
        self.output().save(1)

    def registry_assets(self) -> list[sd.RegistryAsset]:
        raise RuntimeError("no report today")


EXECUTORS = [sd.InlineExecutor(), sd.ThreadExecutor(4), sd.ProcessExecutor(2)]


@pytest.mark.parametrize("executor", EXECUTORS, ids=repr)
def test_what_a_run_logs_and_prints_goes_to_its_task(
    local_root: str, executor: sd.Executor, capsys: pytest.CaptureFixture[str]
) -> None:
    recorder = Recorder()
    stdout = sys.stdout
    print("outside any run: not captured")

    summary = sd.build(
        Mute(left=Chatty(n=1), right=Chatty(n=2)), registry=recorder, executor=executor
    )

    assert summary.ok
    for n, half in ((1, "0.5"), (2, "1.0")):
        lines = recorder.logs[repr(Chatty(n=n))]
        assert [(line.seq, line.stream, line.text) for line in lines] == [
            (0, "log", f"WARNING tests.chatty: working on {n}"),
            (1, "stdout", f"half of {n} is {half}"),
            (2, "stderr", "to stderr"),
        ]
    assert set(recorder.logs) == {repr(Chatty(n=1)), repr(Chatty(n=2))}  # Mute wrote nothing
    if not executor.remote:
        assert "half of 2 is 1.0" in capsys.readouterr().out  # still printed as usual
    assert sys.stdout is stdout  # put back after the build


QUIET_PROCESS = """
import logging, sys
import stardag_core as sd
from tests.core.examples.pipeline import Chatty

class Keeper:
    lines = []
    def task_logs(self, build_id, task, lines):
        self.lines.extend(lines)
    def __getattr__(self, name):
        return lambda *arguments: None

with sd.use_settings(sd.Settings(target_roots={"default": sys.argv[1]})):
    keeper = Keeper()
    sd.build(Chatty(n=6), registry=keeper)
    logging.getLogger("after").warning("after the build")
print(len(keeper.lines))
"""


def test_capturing_hides_no_warning_from_a_process_without_logging_set_up(
    tmp_path: Path,
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", QUIET_PROCESS, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[2],
    )
    assert done.stdout.splitlines()[-1] == "3"  # captured into the task's log...
    assert "working on 6" in done.stderr  # ...and still on stderr, as without a registry
    assert "after the build" in done.stderr


def test_a_run_on_dask_sends_back_what_it_logs_and_prints(local_root: str) -> None:
    recorder = Recorder()

    summary = sd.build(Chatty(n=4), registry=recorder, executor=sd.DaskExecutor(n_workers=1))

    assert summary.ok
    lines = recorder.logs[repr(Chatty(n=4))]
    assert [(line.stream, line.text) for line in lines] == [
        ("log", "WARNING tests.chatty: working on 4"),
        ("stdout", "half of 4 is 2.0"),
        ("stderr", "to stderr"),
    ]


def test_a_run_that_fails_in_a_worker_keeps_its_lines_and_traceback(local_root: str) -> None:
    recorder = Recorder()

    summary = sd.build(Grumpy(), registry=recorder, executor=sd.ProcessExecutor(1))

    (failure,) = summary.failures
    assert isinstance(failure.error, RuntimeError)
    assert "in run" in failure.traceback  # the worker's frames, sent back as text
    assert 'raise RuntimeError("out of coffee")' in failure.traceback
    lines = recorder.logs[repr(Grumpy())]
    assert [line.text for line in lines] == ["ERROR tests.grumpy: about to fail", "sigh"]
    assert [line.seq for line in lines] == [0, 1]


def test_a_build_logging_at_info_captures_info_from_worker_processes(local_root: str) -> None:
    recorder = Recorder()
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.INFO)
    try:
        sd.build(Chatty(n=5, detail=True), registry=recorder, executor=sd.ProcessExecutor(1))
    finally:
        root.setLevel(level)

    texts = [line.text for line in recorder.logs[repr(Chatty(n=5, detail=True))]]
    assert "INFO tests.chatty: in detail" in texts


def test_a_completed_task_publishes_its_assets(local_root: str) -> None:
    recorder = Recorder()

    sd.build(Chatty(n=3), registry=recorder)

    assert recorder.assets["Chatty"] == [
        sd.MarkdownRegistryAsset("report", "# 3 doubled is 6"),
        sd.JSONRegistryAsset("metrics", {"doubled": 6}),
    ]


def test_assets_that_fail_leave_the_task_built(
    local_root: str, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder()

    summary = sd.build(BrokenAssets(), registry=recorder)

    assert summary.ok
    assert "BrokenAssets" not in recorder.assets
    assert "no report today" in caplog.text


HELD = threading.Event()
"""Released by the test: `Held` runs until it is set."""
RAN: list[int] = []


class Held(sd.AutoTask[int]):
    """Runs until the test lets it go."""

    index: int

    def run(self) -> None:
        RAN.append(self.index)
        HELD.wait(30)
        self.output().save(self.index)


async def cancelled_while_held(*tasks: sd.Task) -> Recorder:
    """Build `tasks` on one thread and cancel the build once a `Held` task runs; let that
    task go while the build winds down. The registry that heard it all."""
    HELD.clear()
    RAN.clear()
    registry = Recorder()
    build = asyncio.create_task(
        sd.build_async(*tasks, executor=sd.ThreadExecutor(1), registry=registry, progress=False)
    )
    while not RAN:
        await asyncio.sleep(0.01)
    build.cancel()
    await asyncio.sleep(0.1)  # the build is winding down, the held task still running
    HELD.set()
    with pytest.raises(asyncio.CancelledError):
        await build
    return registry


async def test_a_cancelled_build_starts_nothing_more_and_reports_its_cancellation(
    local_root: str,
) -> None:
    # One thread: the first task runs, three more wait in the executor's queue.
    registry = await cancelled_while_held(*[Held(index=index) for index in range(6)])

    assert RAN == [0]  # the queued tasks never started
    assert registry.builds[-1][0] == "finished"
    assert registry.builds[-1][2] is sd.BuildOutcome.CANCELLED
    kinds = Counter(event.kind for event in registry.events)
    assert kinds == {sd.TaskEventKind.STARTED: 4, sd.TaskEventKind.CANCELLED: 4}
    started = {event.task.id for event in registry.events if event.kind == "started"}
    cancelled = {event.task.id for event in registry.events if event.kind == "cancelled"}
    assert started == cancelled


class Yielding(sd.AutoTask[int]):
    """Yields a held task: suspended while it runs."""

    def run(self) -> Generator[sd.TaskStruct, None, None]:
        held = Held(index=99)
        yield held
        self.output().save(held.load())


async def test_a_task_suspended_for_what_it_yielded_is_cancelled_with_its_build(
    local_root: str,
) -> None:
    registry = await cancelled_while_held(Yielding())

    events = [(type(event.task).__name__, event.kind) for event in registry.events]
    assert events.count(("Yielding", sd.TaskEventKind.CANCELLED)) == 1
    assert events.count(("Held", sd.TaskEventKind.CANCELLED)) == 1
    assert registry.builds[-1][2] is sd.BuildOutcome.CANCELLED
