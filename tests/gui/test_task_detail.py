"""The task detail page: parameters, output, status history, links to the tasks around it,
the lineage graph, assets, and a log that filters by level and follows new lines."""

import logging
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from nicegui import ui
from nicegui.testing import User

import stardag_core as sd
from tests.gui.conftest import Registry, eventually, report_build

APPEND_LOGS = """
mutation($w: ID!, $t: String!, $lines: [LogLineInput!]!) {
  appendLogs(workspaceId: $w, taskId: $t, lines: $lines) { appended }
}
"""
REGISTER = """
mutation($w: ID!, $tasks: [TaskInput!]!) { registerTasks(workspaceId: $w, tasks: $tasks) {
  registered } }
"""


class Talker(sd.AutoTask[int]):
    """Warns, fails loudly in its log, prints to both streams, and publishes two assets."""

    n: int

    def run(self) -> None:
        log = logging.getLogger("tests.talker")
        log.warning("careful with %d", self.n)
        log.error("it went wrong for %d", self.n)
        print(f"working on {self.n}")
        print("a note on stderr", file=sys.stderr)
        self.output().save(self.n)

    def registry_assets(self) -> list[sd.RegistryAsset]:
        return [
            sd.MarkdownRegistryAsset("report", "# Report\n\n**bold** and <b>raw</b> html"),
            sd.JSONRegistryAsset("metrics", {"n": self.output().load()}),
        ]


@pytest.fixture(scope="module")
def talker(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The id of a built `Talker`, with its log and assets in the registry."""
    directory = tmp_path_factory.mktemp("talker")
    task = Talker(n=5)
    with sd.use_settings(sd.Settings(target_roots={"default": str(directory / "out")})):
        report_build(registry.url, registry.workspace_id, task, directory / "outbox.db")
    return str(task.id)


async def test_an_unknown_task_id_is_said_so(user: User) -> None:
    await user.open("/tasks/no-such-task")

    await user.should_see("No task no-such-task in this workspace")


async def test_the_page_shows_parameters_output_and_status_history(user: User, talker: str) -> None:
    await user.open(f"/tasks/{talker}")

    await user.should_see("Talker")
    await user.should_see(talker)
    parameters = user.find(marker="task-parameters").elements.pop()
    assert isinstance(parameters, ui.json_editor)
    assert parameters.properties["content"]["json"] == {"n": 5, "version": ""}
    await user.should_see(f"{talker}.json")  # in the output URI
    history = sorted(user.find(ui.timeline_entry).elements, key=lambda entry: entry.id)
    assert [entry.props["title"] for entry in history] == ["RUNNING", "COMPLETED"]


async def test_dependencies_and_dependents_are_links(user: User, registry: Registry) -> None:
    await user.open(f"/tasks/{registry.root_task_id}")

    await user.should_see("Needs (3)")
    await user.should_see("Needed by (0)")
    user.find("stardag.demo.summarize").click()

    await user.should_see("Needs (1)")
    await user.should_see("Needed by (1)")
    await user.should_see("stardag.demo.measure")


async def test_the_lineage_graph_follows_the_chosen_depth_and_direction(
    user: User, registry: Registry
) -> None:
    await user.open(f"/tasks/{registry.root_task_id}")
    await user.should_see("6 tasks upstream within 2 steps")
    assert len(chart_nodes(user)) == 7  # the task itself too

    choose(user, "lineage-depth", 1)
    await user.should_see("3 tasks upstream within 1 step")
    assert {node["label"]["formatter"] for node in chart_nodes(user)} == {"report", "summarize"}

    choose(user, "lineage-direction", "downstream")
    await user.should_see("0 tasks downstream within 1 step")


async def test_a_lineage_larger_than_the_graph_holds_says_so(
    user: User, registry: Registry
) -> None:
    hub = str(uuid.uuid4())
    needed = [{"taskId": str(uuid.uuid4()), "name": "leaf"} for _ in range(501)]
    registry.query(
        REGISTER,
        w=registry.workspace_id,
        tasks=[
            *needed,
            {"taskId": hub, "name": "hub", "dependencies": [t["taskId"] for t in needed]},
        ],
    )

    await user.open(f"/tasks/{hub}")

    await user.should_see("This lineage is larger than 500 tasks", retries=100)
    assert len(chart_nodes(user)) == 501


async def test_assets_render_markdown_without_its_html_and_json_as_data(
    user: User, talker: str
) -> None:
    await user.open(f"/tasks/{talker}")

    await user.should_see("Assets (2)")
    markdown = user.find(marker="asset-markdown").elements.pop()
    assert isinstance(markdown, ui.html)
    assert "<strong>bold</strong>" in markdown.content
    assert "&lt;b&gt;raw&lt;/b&gt;" in markdown.content
    data = user.find(marker="asset-json").elements.pop()
    assert isinstance(data, ui.json_editor)
    assert data.properties["content"]["json"] == {"n": 5}


async def test_the_log_filters_by_level(user: User, talker: str) -> None:
    await user.open(f"/tasks/{talker}")
    await user.should_see("working on 5")
    await user.should_see("a note on stderr")

    choose(user, "log-level", logging.WARNING)
    await user.should_see("careful with 5")
    await user.should_see("a note on stderr")
    await user.should_not_see("working on 5")

    choose(user, "log-level", logging.ERROR)
    await user.should_see("it went wrong for 5")
    await user.should_not_see("careful with 5")


async def test_follow_mode_shows_lines_as_they_arrive(
    user: User, registry: Registry, talker: str
) -> None:
    await user.open(f"/tasks/{talker}")
    await user.should_see("working on 5")

    append(registry, talker, "a line that came later")

    await eventually(lambda: log_shows(user, "a line that came later"))


async def test_a_log_not_followed_waits_until_followed_again(
    user: User, registry: Registry, talker: str
) -> None:
    await user.open(f"/tasks/{talker}")
    await user.should_see("working on 5")
    user.find(marker="log-follow").click()  # off

    append(registry, talker, "read once followed again")
    user.find(marker="log-follow").click()  # on

    await eventually(lambda: log_shows(user, "read once followed again"))


def append(registry: Registry, task_id: str, text: str) -> None:
    """Append a stdout line to the task's log, as a running task's build would."""
    lines = registry.query(
        "query($w: ID!, $t: String!) { workspace(id: $w) { task(taskId: $t) { "
        "logs(first: 1000) { seq } } } }",
        w=registry.workspace_id,
        t=task_id,
    )
    seq = len(lines["workspace"]["task"]["logs"])
    registry.query(
        APPEND_LOGS,
        w=registry.workspace_id,
        t=task_id,
        lines=[{"seq": seq, "text": text, "loggedAt": datetime.now(UTC).isoformat()}],
    )


def log_shows(user: User, text: str) -> bool:
    """Whether the page's log has a line containing ``text``."""
    log = user.find(marker="task-log").elements.pop()
    return any(
        text in str(line.text) for line in log.default_slot.children if isinstance(line, ui.label)
    )


def choose(user: User, marker: str, value: object) -> None:
    """Pick ``value`` in the control marked ``marker``, as a person picking an option."""
    element = user.find(marker=marker).elements.pop()
    assert isinstance(element, ui.select | ui.toggle)
    with user:
        element.set_value(value)


def chart_nodes(user: User) -> list[dict[str, Any]]:
    """The nodes the lineage graph draws now."""
    chart = user.find(ui.echart).elements.pop()
    assert isinstance(chart, ui.echart)
    return list(chart.options["series"][0]["data"])
