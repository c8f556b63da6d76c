"""The SDK reports builds to a real registry: `GraphQLRegistry` against uvicorn on loopback.

A build appears with its graph and statuses; a registry that is down slows nothing and loses
nothing: the outbox keeps the reports and sends them, each once, when the registry is back.
"""

import contextlib
import contextvars
import os
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import stardag_core as sd
from stardag_core import registry_client as registry_client_module
from stardag_core.registry_client import GraphQLRegistry
from stardag_core.task_id import task_id
from stardag_graphql.app import create_app
from stardag_graphql.settings import Settings
from tests.conftest import free_port, serving
from tests.core.examples.pipeline import Add, Chatty, Number, layered

WORKSPACE = "{ organizations { workspaces { id } } }"
BUILDS = """
query($w: ID!) {
  workspace(id: $w) {
    builds(first: 5) {
      nodes {
        status commit
        rootTasks { name }
        graph { nodes { name status parameters } edges { upstream downstream } }
        events(first: 100) { totalCount nodes { kind } }
      }
    }
  }
}
"""


class Broken(sd.AutoTask[int]):
    def run(self) -> None:
        raise RuntimeError("disk on fire")


class Link(sd.AutoTask[int]):
    """A chain: each link needs the one before it."""

    index: int

    def requires(self) -> sd.TaskStruct:
        return Link(index=self.index - 1) if self.index else None

    def run(self) -> None:
        self.output().save(self.index)


def graphql(url: str, query: str, **variables: Any) -> dict[str, Any]:
    response = httpx.post(f"{url}/graphql", json={"query": query, "variables": variables})
    body = response.json()
    assert not body.get("errors"), body
    return dict(body["data"])


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url)


@contextlib.contextmanager
def registry_client(url: str, workspace: str, outbox: Path) -> Iterator[GraphQLRegistry]:
    registry = GraphQLRegistry(url, workspace, outbox=outbox)
    try:
        yield registry
    finally:
        registry.close()


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[str]:
    with serving(create_app(settings)) as url:
        yield url


def test_a_build_appears_with_its_graph_and_statuses(
    server: str, local_root: str, tmp_path: Path
) -> None:
    workspace = graphql(server, WORKSPACE)["organizations"][0]["workspaces"][0]["id"]
    task = Add(left=Number(value=1), right=Number(value=2))

    with registry_client(server, workspace, tmp_path / "outbox.db") as registry:
        summary = sd.build(task, registry=registry)
        assert registry.flush(30)

    (build,) = graphql(server, BUILDS, w=workspace)["workspace"]["builds"]["nodes"]
    assert summary.ok
    assert build["status"] == "COMPLETED"
    assert build["rootTasks"] == [{"name": "Add"}]
    statuses = {t["name"]: t["status"] for t in build["graph"]["nodes"]}
    assert statuses == {"Add": "COMPLETED", "Number": "COMPLETED"}
    assert len(build["graph"]["edges"]) == 2
    assert build["events"]["totalCount"] == 6  # started and completed, for each of 3 tasks
    added = next(t for t in build["graph"]["nodes"] if t["name"] == "Add")
    assert added["parameters"]["left"] == {"id": str(task.left.id)}
    assert task_id(added["parameters"]) == task.id


def test_a_build_larger_than_a_registration_request_is_registered_whole(
    server: str, local_root: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Its roots are registered last: a request that named them earlier was refused (they
    # were not registered yet), and with it every task in it.
    monkeypatch.setattr(registry_client_module, "TASKS_PER_REQUEST", 4)
    workspace = graphql(server, WORKSPACE)["organizations"][0]["workspaces"][0]["id"]
    roots = layered(width=3, depth=3)  # 12 tasks, in 3 requests

    with registry_client(server, workspace, tmp_path / "outbox.db") as registry:
        summary = sd.build(*roots, registry=registry)
        assert registry.flush(30)

    (build,) = graphql(server, BUILDS, w=workspace)["workspace"]["builds"]["nodes"]
    assert summary.ok
    assert build["rootTasks"] == [{"name": "Add"}] * 3
    assert len(build["graph"]["nodes"]) == 12
    assert {t["status"] for t in build["graph"]["nodes"]} == {"COMPLETED"}
    assert build["events"]["totalCount"] == 24


def test_a_complete_chain_deeper_than_the_stack_is_registered_with_its_lineage(
    server: str, local_root: str, tmp_path: Path
) -> None:
    workspace = graphql(server, WORKSPACE)["organizations"][0]["workspaces"][0]["id"]
    depth = sys.getrecursionlimit() + 500
    Link(index=depth).output().save(depth)  # complete: the build looks no further

    with registry_client(server, workspace, tmp_path / "outbox.db") as registry:
        summary = sd.build(Link(index=depth), registry=registry)
        assert registry.flush(60)

    assert [task.id for task in summary.skipped] == [Link(index=depth).id]
    (build,) = graphql(server, BUILDS, w=workspace)["workspace"]["builds"]["nodes"]
    assert len(build["graph"]["nodes"]) == depth + 1
    assert len(build["graph"]["edges"]) == depth


def test_a_failure_is_recorded_with_its_traceback(
    server: str, local_root: str, tmp_path: Path
) -> None:
    workspace = graphql(server, WORKSPACE)["organizations"][0]["workspaces"][0]["id"]

    with registry_client(server, workspace, tmp_path / "outbox.db") as registry:
        sd.build(Broken(), registry=registry, fail_mode="continue")
        assert registry.flush(30)

    data = graphql(
        server,
        "query($w: ID!) { workspace(id: $w) { builds { nodes { status events { nodes "
        "{ kind payload } } } } } }",
        w=workspace,
    )
    (build,) = data["workspace"]["builds"]["nodes"]
    failed = [e for e in build["events"]["nodes"] if e["kind"] == "TASK_FAILED"]
    assert build["status"] == "FAILED"
    assert "disk on fire" in failed[0]["payload"]["error"]


def test_logs_and_assets_of_a_run_reach_the_registry(
    server: str, local_root: str, tmp_path: Path
) -> None:
    workspace = graphql(server, WORKSPACE)["organizations"][0]["workspaces"][0]["id"]
    task = Chatty(n=4)

    with registry_client(server, workspace, tmp_path / "outbox.db") as registry:
        sd.build(task, registry=registry)
        task.output().remove()
        sd.build(task, registry=registry)  # a second run: its lines follow the first's
        assert registry.flush(30)

    data = graphql(
        server,
        """query($w: ID!, $t: String!) { workspace(id: $w) { task(taskId: $t) {
            logs { seq stream text } assets { name kind body data } } } }""",
        w=workspace,
        t=str(task.id),
    )["workspace"]["task"]
    run = [
        ("log", "WARNING tests.chatty: working on 4"),
        ("stdout", "half of 4 is 2.0"),
        ("stderr", "to stderr"),
    ]
    assert [(line["stream"], line["text"]) for line in data["logs"]] == run + run
    assert [line["seq"] for line in data["logs"]] == list(range(6))
    assert sorted(data["assets"], key=lambda asset: asset["name"]) == [
        {"name": "metrics", "kind": "JSON", "body": None, "data": {"doubled": 8}},
        {"name": "report", "kind": "MARKDOWN", "body": "# 4 doubled is 8", "data": None},
    ]


def test_a_registered_task_is_read_back_to_load_its_output(
    server: str, local_root: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace = graphql(server, WORKSPACE)["organizations"][0]["workspaces"][0]["id"]
    task = Add(left=Number(value=20), right=Add(left=Number(value=1), right=Number(value=21)))
    with registry_client(server, workspace, tmp_path / "outbox.db") as registry:
        sd.build(task, registry=registry)
        assert registry.flush(30)
    monkeypatch.setenv("STARDAG_REGISTRY_URL", server)
    monkeypatch.setenv("STARDAG_WORKSPACE", workspace)

    loaded = sd.Task.from_registry(task.id)
    added = Add.from_registry(str(task.id))

    assert loaded == added == task
    assert loaded.output().load() == 42
    with pytest.raises(TypeError, match="is a Add, not a Number"):
        Number.from_registry(task.id)
    with pytest.raises(sd.RegistryError, match="no task 00000000-0000-5000-8000-000000000000"):
        sd.Task.from_registry("00000000-0000-5000-8000-000000000000")


def test_a_registry_that_is_down_loses_nothing(
    settings: Settings, local_root: str, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox.db"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with serving(create_app(settings)) as up:
        workspace = graphql(up, WORKSPACE)["organizations"][0]["workspaces"][0]["id"]

    with registry_client(url, workspace, outbox) as offline:
        summary = sd.build(Add(left=Number(value=3), right=Number(value=4)), registry=offline)
        assert not offline.flush(1)
        assert offline.pending() > 0
    with serving(create_app(settings), port=port), registry_client(url, workspace, outbox) as back:
        assert back.flush(30)
        (build,) = graphql(url, BUILDS, w=workspace)["workspace"]["builds"]["nodes"]

    assert summary.ok
    assert build["status"] == "COMPLETED"
    assert build["events"]["totalCount"] == 6


def test_closing_gives_up_at_once_on_an_unreachable_registry_and_says_what_waits(
    local_root: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outbox = tmp_path / "outbox.db"
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens
    registry = GraphQLRegistry(url, "V29ya3NwYWNlOjE=", outbox=outbox)
    assert sd.build(Add(left=Number(value=3), right=Number(value=4)), registry=registry).ok
    waiting = registry.pending()
    started = time.monotonic()
    registry.close(timeout=60)
    # Not a measure of speed: a close that waited for the registry would take the whole
    # minute; one that gives up takes at most a retry's pause.
    assert time.monotonic() - started < 30
    assert f"{waiting} report(s) for the registry at {url} wait in {outbox}" in caplog.text
    assert waiting == 6 + 3  # the build's start and finish, its registration, 6 events


@contextlib.contextmanager
def registry_process(settings: Settings, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """`stardag serve` in its own process on `port`, once it answers; killed (SIGKILL) after."""
    environment = {**os.environ, "STARDAG_DATABASE_URL": settings.database_url}
    process = subprocess.Popen(
        [sys.executable, "-m", "stardag_core", "serve", "--port", str(port)],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            assert process.poll() is None, "the registry did not start"
            assert time.monotonic() < deadline, "the registry did not answer in 30 s"
            time.sleep(0.05)
        yield process
    finally:
        process.kill()
        process.wait()


def test_a_registry_killed_three_times_during_a_build_gets_every_event_once(
    settings: Settings, local_root: str, tmp_path: Path
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    roots = layered(width=50, depth=19)  # 1,000 tasks
    with registry_process(settings, port):
        workspace = graphql(url, WORKSPACE)["organizations"][0]["workspaces"][0]["id"]
    registry = GraphQLRegistry(url, workspace, outbox=tmp_path / "outbox.db")
    # The thread runs in this context, so that it builds under the test's target root.
    context = contextvars.copy_context()
    build = threading.Thread(
        target=context.run, args=(sd.build, *roots), kwargs={"registry": registry}
    )

    build.start()
    for _ in range(3):
        with registry_process(settings, port):
            time.sleep(0.5)  # some batches get through, then SIGKILL mid-stream
    build.join()
    with registry_process(settings, port):
        assert registry.flush(120)
        registry.close()
        counts = graphql(url, EVENT_COUNTS, w=workspace)["workspace"]

    (build_row,) = counts["builds"]["nodes"]
    assert build_row["status"] == "COMPLETED"
    assert build_row["events"]["totalCount"] == 2000, counts  # started and completed, each once
    assert counts["tasks"]["totalCount"] == 1000


EVENT_COUNTS = """
query($w: ID!) {
  workspace(id: $w) {
    tasks(filter: {statuses: [COMPLETED]}) { totalCount }
    builds { nodes { status events { totalCount } } }
  }
}
"""
