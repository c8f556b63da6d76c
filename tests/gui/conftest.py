"""GUI fixtures: a real registry under uvicorn on loopback holding a real build, and the GUI
on it through NiceGUI's simulated `User` or in headless Chromium (`Screen`)."""

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from nicegui import ui
from nicegui.testing import Screen, User
from nicegui.testing.user_simulation import user_simulation
from selenium import webdriver

import stardag_core as sd
from stardag_core.demo import demo_dag
from stardag_core.registry_client import GraphQLRegistry
from stardag_graphql.settings import Settings
from stardag_gui.app import create_root
from stardag_gui.context import Connection
from tests.graphql.conftest import serving_settings
from tests.graphql.test_ide import CHROMIUM, CHROMIUM_FLAGS

WORKSPACES = "{ organizations { workspaces { id } } }"


@dataclass(frozen=True)
class Registry:
    """A registry on loopback and what the demo build put in it."""

    url: str
    workspace_id: str
    build_id: str
    root_task_id: str

    def query(self, document: str, **variables: object) -> dict[str, Any]:
        """The data of ``document``, asked over HTTP."""
        answer = httpx.post(
            f"{self.url}/graphql", json={"query": document, "variables": variables}
        ).json()
        assert not answer.get("errors"), answer
        return dict(answer["data"])


def report_build(url: str, workspace_id: str, task: sd.Task, outbox: Path) -> str:
    """Build ``task`` reporting to the registry at ``url``; the build's id once all arrived."""
    registry = GraphQLRegistry(url, workspace_id, outbox=outbox)
    try:
        sd.build(task, registry=registry).raise_on_failure()
        assert registry.flush(30)
    finally:
        registry.close()
    answer = httpx.post(
        f"{url}/graphql",
        json={
            "query": "query($w: ID!) { workspace(id: $w) { builds(first: 1) { nodes { id } } } }",
            "variables": {"w": workspace_id},
        },
    ).json()
    return str(answer["data"]["workspace"]["builds"]["nodes"][0]["id"])


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A registry in local mode on SQLite, holding one build of the demo pipeline."""
    directory = tmp_path_factory.mktemp("gui-registry")
    settings = Settings(database_url=f"sqlite+aiosqlite:///{directory / 'registry.db'}")
    with serving_settings(settings) as url:
        answer = httpx.post(f"{url}/graphql", json={"query": WORKSPACES}).json()
        workspace_id = answer["data"]["organizations"][0]["workspaces"][0]["id"]
        dag = demo_dag(samples=50)
        with sd.use_settings(sd.Settings(target_roots={"default": str(directory / "outputs")})):
            build_id = report_build(url, workspace_id, dag, directory / "outbox.db")
        yield Registry(url, workspace_id, build_id, str(dag.id))


TEARDOWN_RACE = "Could not cancel"
"""NiceGUI's log line when its teardown outlasts 2 s: an outbox loop's ``asyncio.wait_for``
swallows the cancellation when it lands on the loop's 1 s timeout (Python 3.11's
``wait_for``), so that loop stops only on the next round. Unrelated to the code under test."""


@contextlib.asynccontextmanager
async def gui_on(connection: Connection, caplog: pytest.LogCaptureFixture) -> AsyncIterator[User]:
    """A simulated person using the GUI on ``connection``; fails the test on an error log
    (but NiceGUI's teardown race, see ``TEARDOWN_RACE``)."""
    async with user_simulation(root=create_root(connection)) as user:
        yield user
    errors = [
        record.getMessage()
        for record in caplog.get_records("call")
        if record.levelname == "ERROR" and not record.getMessage().startswith(TEARDOWN_RACE)
    ]
    assert not errors, errors


PATIENCE = 50
"""How many times `User.should_see` looks (0.1 s apart) before it fails. What a page shows
after a registry round trip took longer than NiceGUI's default of three looks on a loaded
CI machine (twice in one run, 2026-11-23)."""


@pytest.fixture(autouse=True)
def _patient_should_see(monkeypatch: pytest.MonkeyPatch) -> None:
    look = User.should_see

    async def should_see(self: User, *args: Any, retries: int = PATIENCE, **kwargs: Any) -> None:
        await look(self, *args, retries=retries, **kwargs)

    monkeypatch.setattr(User, "should_see", should_see)


@pytest.fixture
async def user(registry: Registry, caplog: pytest.LogCaptureFixture) -> AsyncIterator[User]:
    """A simulated person using the GUI on the registry."""
    async with gui_on(Connection(registry.url, workspace_id=registry.workspace_id), caplog) as user:
        yield user


@pytest.fixture(scope="session")
def nicegui_chrome_options() -> webdriver.ChromeOptions:
    """Headless Debian Chromium that reaches loopback only and never the internet."""
    os.environ.update(SE_OFFLINE="true", SE_AVOID_STATS="true")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        *CHROMIUM_FLAGS,
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return options


@pytest.fixture
def gui_screen(screen: Screen, registry: Registry) -> Screen:
    """Headless Chromium on the GUI served on the registry."""
    screen.ui_run_kwargs["root"] = create_root(
        Connection(registry.url, workspace_id=registry.workspace_id)
    )
    screen.ui_run_kwargs["storage_secret"] = "test secret"
    screen.ui_run_kwargs["tailwind"] = False  # as `stardag_gui.app.run` serves it
    # The browser resolves no host name (see `nicegui_chrome_options`), not even localhost.
    screen.url = f"http://127.0.0.1:{screen.PORT}"
    return screen


async def eventually(check: Callable[[], bool], timeout: float = 15.0) -> None:
    """Wait until ``check()`` holds (page handlers run in the background of a click)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "the page never got there"
        await asyncio.sleep(0.02)


async def rows_of(user: User, count: int | None = None) -> list[dict[str, Any]]:
    """The rows of the page's one table, once it has ``count`` of them (any, if None)."""

    def table() -> ui.table | None:
        try:
            found = [element for element in user.find(ui.table).elements if element.visible]
        except AssertionError:  # none yet
            return None
        assert len(found) <= 1, "more than one table on the page"
        return found[0] if found and isinstance(found[0], ui.table) else None

    def ready() -> bool:
        shown = table()
        return shown is not None and (count is None or len(shown.rows) == count)

    await eventually(ready)
    shown = table()
    assert shown is not None
    return list(shown.rows)


def record_build(
    registry: Registry,
    tasks: Sequence[dict[str, Any]],
    events: Sequence[tuple[str, str]] = (),
    *,
    name: str | None = None,
    finish: bool = True,
) -> str:
    """Report a build of ``tasks`` (as `registerTasks` takes them) straight through the API,
    with ``events`` ((task id, kind), one millisecond apart), and finish it unless told not
    to; the build's id. Much cheaper than running thousands of tasks when a test needs only
    their records; `record_events` adds events later."""
    started: Any = registry.query(
        "mutation($w: ID!, $n: String) { startBuild(workspaceId: $w, name: $n) { id } }",
        w=registry.workspace_id,
        n=name,
    )
    build_id = str(started["startBuild"]["id"])
    for start in range(0, len(tasks), 1000):
        registry.query(
            "mutation($w: ID!, $t: [TaskInput!]!, $b: ID) "
            "{ registerTasks(workspaceId: $w, tasks: $t, buildId: $b) { registered } }",
            w=registry.workspace_id,
            t=list(tasks[start : start + 1000]),
            b=build_id,
        )
    record_events(registry, build_id, events)
    if finish:
        registry.query(
            "mutation($b: ID!) { finishBuild(buildId: $b, status: COMPLETED) { id } }",
            b=build_id,
        )
    return build_id


def record_events(registry: Registry, build_id: str, events: Sequence[tuple[str, str]]) -> None:
    """Record ``events`` ((task id, kind), one millisecond apart, from now) in a build."""
    now = datetime.now(UTC)
    recorded = [
        {
            "eventId": uuid.uuid4().hex,
            "kind": kind,
            "occurredAt": (now + timedelta(milliseconds=i)).isoformat(),
            "taskId": task_id,
            "buildId": build_id,
        }
        for i, (task_id, kind) in enumerate(events)
    ]
    for start in range(0, len(recorded), 500):
        registry.query(
            "mutation($w: ID!, $e: [EventInput!]!) "
            "{ recordEvents(workspaceId: $w, events: $e) { recorded } }",
            w=registry.workspace_id,
            e=recorded[start : start + 500],
        )
