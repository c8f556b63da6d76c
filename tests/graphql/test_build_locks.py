"""Build locks end to end: worker processes build one DAG against a real registry, and each
task's `run` executes exactly once; a worker paused past its lease records nothing."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from gql.transport.httpx import HTTPXTransport

import stardag_core as sd
from stardag_core.channel import RegistryUnavailable
from stardag_core.registry_client import GraphQLRegistry
from stardag_graphql.app import create_app
from stardag_graphql.settings import Settings
from tests.conftest import serving
from tests.core.examples.pipeline import Number
from tests.graphql.lock_worker import SLOW, Step, dag, slow, wide
from tests.graphql.test_sdk_registry import WORKSPACE, graphql

TTL = 5.0
"""Seconds a lease lasts. A worker counts its lease from before the request that took it,
so a lease is lost if that request takes longer: with four workers starting at once on two
shared cores, the first requests took up to 3.2 s (measured), which lapsed 3 s leases."""
COMPLETIONS = """
query($w: ID!, $t: String!) {
  workspace(id: $w) {
    locks { key }
    task(taskId: $t) { status events(first: 100) { nodes { kind payload build { id } } } }
  }
}
"""


@pytest.fixture
async def server(database_url: str) -> AsyncIterator[str]:
    settings = Settings(database_url=database_url)
    with serving(create_app(settings)) as url:
        yield url


def worker(
    url: str, workspace: str, tmp_path: Path, name: str, which: str, ttl: float, **env: str
) -> subprocess.Popen[str]:
    """A worker process building `which` with locks; its side effects go to `effects`."""
    environment = {
        **os.environ,
        "STARDAG_TARGET_ROOTS__DEFAULT": str(tmp_path / "outputs"),
        "LOCK_EFFECTS": str(tmp_path / "effects"),
        "STARTED": str(tmp_path / f"started-{name}"),
        "WORKER_NAME": name,
        **env,
    }
    outbox = str(tmp_path / f"outbox-{name}.db")
    command = ["-m", "tests.graphql.lock_worker", url, workspace, outbox, str(ttl), which]
    return subprocess.Popen(
        [sys.executable, *command],
        env=environment,
        stdout=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> tuple[int, dict[str, Any]]:
    out, _ = process.communicate(timeout=180)
    return process.returncode, json.loads(out.strip().splitlines()[-1])


def together(
    server: str, workspace: str, tmp_path: Path, workers: int, which: str
) -> tuple[list[tuple[int, dict[str, Any]]], list[list[str]]]:
    """`workers` worker processes building `which`, started at once once all are ready:
    their exit codes and summaries, and the side effects of every run (task id, pid)."""
    names = [f"w{number}" for number in range(workers)]
    gate = tmp_path / "start"
    processes = [
        worker(server, workspace, tmp_path, name, which, TTL, START_GATE=str(gate))
        for name in names
    ]
    deadline = time.monotonic() + 120
    while not all(Path(f"{gate}.{name}").exists() for name in names):
        assert time.monotonic() < deadline, "the workers never got ready"
        assert all(process.poll() is None for process in processes), "a worker died starting"
        time.sleep(0.05)
    gate.touch()
    results = [finish(process) for process in processes]
    effects = [line.split() for line in (tmp_path / "effects").read_text().splitlines()]
    return results, effects


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_four_workers_run_every_task_exactly_once(server: str, tmp_path: Path) -> None:
    workspace = graphql(server, WORKSPACE)["organizations"][0]["workspaces"][0]["id"]
    results, effects = together(server, workspace, tmp_path, 4, "dag")

    runs = Counter(task_id for task_id, _ in effects)
    everything = [task for root in dag(TTL) for task in walk(root)]
    slow_ids = {
        task.id
        for task in everything
        if isinstance(task, Step) and (task.layer, task.index) in SLOW
    }
    assert len({task.id for task in everything}) == 200
    assert len(slow_ids) == 4  # each runs three times longer than the lease
    assert [code for code, _ in results] == [0, 0, 0, 0], results
    assert set(runs) == {str(task.id) for task in everything}
    assert max(runs.values()) == 1, runs.most_common(3)
    assert sum(summary["counts"]["built"] for _, summary in results) == 200
    assert len({pid for _, pid in effects}) > 1, "one worker built everything: proves nothing"
    data = graphql(server, COMPLETIONS, w=workspace, t=str(min(slow_ids)))["workspace"]
    built = [e for e in data["task"]["events"]["nodes"] if _is_completion(e)]
    assert len(built) == 1
    assert data["task"]["status"] == "COMPLETED"
    assert data["locks"] == []


def test_workers_started_together_share_a_wide_layer(server: str, tmp_path: Path) -> None:
    workspace = graphql(server, WORKSPACE)["organizations"][0]["workspaces"][0]["id"]
    results, effects = together(server, workspace, tmp_path, 3, "wide")

    assert [code for code, _ in results] == [0, 0, 0], results
    runs = Counter(task_id for task_id, _ in effects)
    assert set(runs) == {str(task.id) for task in wide()}
    assert max(runs.values()) == 1
    # The first worker up leases no more than its slots and its pace: the layer's ready
    # tasks are not all its own, and another worker builds some of them.
    builders = Counter(pid for _, pid in effects)
    assert len(builders) > 1, builders


def test_a_worker_paused_past_its_lease_cannot_record_completion(
    server: str, tmp_path: Path
) -> None:
    workspace = graphql(server, WORKSPACE)["organizations"][0]["workspaces"][0]["id"]
    task = slow()
    # Long enough that the worker taking over keeps its own lease while a loaded machine
    # (pytest-xdist's other worker busy too) answers its renewals late.
    ttl = 4.0
    stalled = worker(server, workspace, tmp_path, "stalled", "slow", ttl, RUN_SECONDS=str(2 * ttl))
    _wait_for(tmp_path / "started-stalled")
    stalled.send_signal(signal.SIGSTOP)
    try:
        time.sleep(ttl * 1.5)  # its lease lapses while it is paused
        code, summary = finish(worker(server, workspace, tmp_path, "taker", "slow", ttl))
    finally:
        stalled.send_signal(signal.SIGCONT)
    stalled_code, stalled_summary = finish(stalled)

    data = graphql(server, COMPLETIONS, w=workspace, t=str(task.id))["workspace"]
    completions = [e for e in data["task"]["events"]["nodes"] if _is_completion(e)]
    with sd.use_settings(sd.Settings(target_roots={"default": str(tmp_path / "outputs")})):
        written_by = task.output().load()
    assert (code, summary["counts"]["built"]) == (0, 1)
    assert stalled_code == 1
    assert stalled_summary["failures"] == ["LeaseLostError"]
    assert written_by == "taker"
    assert len(completions) == 1
    assert data["task"]["status"] == "COMPLETED"
    assert len((tmp_path / "effects").read_text().splitlines()) == 2  # it ran twice: once paused


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_a_lease_given_back_and_taken_again_in_one_request_stays_held(
    server: str, tmp_path: Path
) -> None:
    workspace = graphql(server, WORKSPACE)["organizations"][0]["workspaces"][0]["id"]
    registry = GraphQLRegistry(server, workspace, outbox=tmp_path / "outbox.db")
    task = slow()
    locks = registry.build_locks(sd.BuildRecord(roots=(task,)), ttl=30)

    async def give_back_and_take_again() -> tuple[sd.Lease | None, sd.Lease | None]:
        first = await locks.acquire(task)
        assert first is not None
        # Had the acquisition gone first, the registry would have renewed the lease it
        # still held (same holder, same fencing token), and the release freed it.
        _, second = await asyncio.gather(locks.release(first), locks.acquire(task))
        return first, second

    try:
        first, second = asyncio.run(give_back_and_take_again())
    finally:
        locks.close()
        registry.close()
    assert first is not None
    assert second is not None
    assert second.fencing_token == first.fencing_token + 1  # granted anew, once freed
    held = graphql(server, COMPLETIONS, w=workspace, t=str(task.id))["workspace"]["locks"]
    assert held == [{"key": f"task:{task.id}"}]


def test_lock_calls_wait_out_an_unreachable_registry(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace = graphql(server, WORKSPACE)["organizations"][0]["workspaces"][0]["id"]
    registry = GraphQLRegistry(server, workspace, outbox=tmp_path / "outbox.db")
    task = slow()
    locks = registry.build_locks(sd.BuildRecord(roots=(task,)), ttl=30)
    # The fault injected: the first two requests find the registry down.
    channel = locks._channel
    down = [RegistryUnavailable("connection refused")] * 2
    reach = channel.execute

    def flaky(document: str, variables: dict[str, Any]) -> dict[str, Any]:
        if down:
            raise down.pop()
        return reach(document, variables)

    monkeypatch.setattr(channel, "execute", flaky)

    async def take_and_give_back() -> sd.Lease | None:
        lease = await locks.acquire(task)
        if lease is not None:
            await locks.release(lease)
        return lease

    try:
        lease = asyncio.run(take_and_give_back())
    finally:
        locks.close()
        registry.close()
    assert lease is not None
    assert down == []
    held = graphql(server, COMPLETIONS, w=workspace, t=str(task.id))["workspace"]["locks"]
    assert held == []


def test_a_lease_is_taken_while_a_completion_is_on_its_way(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace = graphql(server, WORKSPACE)["organizations"][0]["workspaces"][0]["id"]
    registry = GraphQLRegistry(server, workspace, outbox=tmp_path / "outbox.db")
    done, next_one = Step(layer=0, index=-2), Step(layer=0, index=-3)
    build = sd.BuildRecord(roots=(done, next_one))
    registry.build_started(build)
    locks = registry.build_locks(build, ttl=30)
    # The fault injected: the registry takes its time over completions, until let go.
    channel = locks._channel
    completing, let_go = threading.Event(), threading.Event()
    reach = channel.execute

    def slow_completions(document: str, variables: dict[str, Any]) -> dict[str, Any]:
        if "complete" in variables:
            completing.set()
            assert let_go.wait(30), "the test never let the completion go"
        return reach(document, variables)

    monkeypatch.setattr(channel, "execute", slow_completions)

    async def complete_then_lease() -> tuple[bool, sd.Lease | None]:
        lease = await locks.acquire(done)
        assert lease is not None
        event = sd.TaskEvent(build.id, done, sd.TaskEventKind.COMPLETED)
        completion = asyncio.create_task(locks.complete(lease, event))
        await asyncio.to_thread(completing.wait, 30)
        # A lease is on the path to a task's run: it does not wait for the completion.
        taken = await asyncio.wait_for(locks.acquire(next_one), timeout=20)
        let_go.set()
        return await completion, taken

    try:
        recorded, taken = asyncio.run(complete_then_lease())
    finally:
        let_go.set()
        locks.close()
        registry.close()
    assert recorded
    assert taken is not None
    held = graphql(server, COMPLETIONS, w=workspace, t=str(done.id))["workspace"]
    assert held["locks"] == [{"key": f"task:{next_one.id}"}]
    assert held["task"]["status"] == "COMPLETED"


def test_a_registrys_builds_lease_over_one_connection_set_up_ahead(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    connected: list[str] = []
    connect = HTTPXTransport.connect

    def counted(transport: HTTPXTransport) -> None:
        connected.append(threading.current_thread().name)
        connect(transport)  # type: ignore[no-untyped-call]

    monkeypatch.setattr(HTTPXTransport, "connect", counted)
    workspace = graphql(server, WORKSPACE)["organizations"][0]["workspaces"][0]["id"]
    registry = GraphQLRegistry(server, workspace, outbox=tmp_path / "outbox.db")
    try:
        # The reports' connection and the locks' are set up by the sender, before any build.
        deadline = time.monotonic() + 20
        while len(connected) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert connected == ["stardag-registry"] * 2
        with sd.use_settings(sd.Settings(target_roots={"default": str(tmp_path / "out")})):
            for index in (1, 2):
                summary = sd.build(Number(value=index), registry=registry, locks=True)
                assert len(summary.built) == 1
    finally:
        registry.close()
    assert len(connected) == 2  # the second build leased over the same connection


def test_locks_need_a_registry_that_holds_them(local_root: str) -> None:
    with pytest.raises(
        sd.ConfigError, match=r"build\(locks=True\) needs a registry that holds build locks"
    ):
        sd.build(slow(), locks=True)


def _is_completion(event: dict[str, Any]) -> bool:
    return event["kind"] == "TASK_COMPLETED" and not event["payload"].get("skipped")


def walk(root: sd.Task) -> list[sd.Task]:
    """`root` and every task it needs, each once."""
    seen: dict[object, sd.Task] = {}
    stack = [root]
    while stack:
        task = stack.pop()
        if task.id not in seen:
            seen[task.id] = task
            stack.extend(sd.flatten_tasks(task.requires()))
    return list(seen.values())


def _wait_for(path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear in {timeout} s"
        time.sleep(0.02)
