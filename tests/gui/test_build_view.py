"""The build view: header and counts, the graph of the build's tasks, the task drawer, the
timeline, live updates that pause and catch up, and grouping offered for a large build."""

import asyncio
import uuid
from typing import Any

from nicegui import ui
from nicegui.testing import User

from stardag_gui.graph import LARGE_GRAPH
from tests.gui.conftest import Registry, eventually, record_build, record_events

TICKS = 20
"""Retries (0.1 s apart) for what the page shows on its next tick, twice a second."""
LOADING = 100
"""Retries for a page that loads thousands of tasks first (on a busy machine)."""

GRAPH = """
query($w: ID!, $b: ID!) {
  workspace(id: $w) {
    build(id: $b) {
      name
      graph { nodes { taskId namespace name status } edges { upstream downstream } }
      events(first: 100) { nodes { kind task { taskId } } }
    }
  }
}
"""


def build_of(registry: Registry, build_id: str) -> dict[str, Any]:
    """The build's name, graph and first events, as the registry answers them."""
    data: Any = registry.query(GRAPH, w=registry.workspace_id, b=build_id)
    return dict(data["workspace"]["build"])


def dag_chart_of(user: User) -> ui.echart:
    """The page's DAG chart."""
    (chart,) = [c for c in user.find(ui.echart).elements if "dag-chart" in c.classes]
    assert isinstance(chart, ui.echart)
    return chart


def task(name: str, *dependencies: str, namespace: str = "") -> dict[str, Any]:
    """A task as `registerTasks` takes it, with a fresh id."""
    return {
        "taskId": str(uuid.uuid4()),
        "name": name,
        "namespace": namespace,
        "parameters": {"label": name},
        "dependencies": list(dependencies),
    }


async def test_the_header_shows_the_build_and_its_counts_by_status(
    user: User, registry: Registry
) -> None:
    build = build_of(registry, registry.build_id)
    tasks = len(build["graph"]["nodes"])

    await user.open(f"/builds/{registry.build_id}")

    await user.should_see(build["name"])
    await user.should_see("COMPLETED")
    await user.should_see(f"completed {tasks}")
    await user.should_see("failed 0")


async def test_the_graph_holds_the_build_s_tasks_and_dependencies(
    user: User, registry: Registry
) -> None:
    graph = build_of(registry, registry.build_id)["graph"]

    await user.open(f"/builds/{registry.build_id}")
    await user.should_see("completed")

    (series,) = dag_chart_of(user).options["series"]
    assert {item["name"] for item in series["data"]} == {n["taskId"] for n in graph["nodes"]}
    assert {(link["source"], link["target"]) for link in series["links"]} == {
        (edge["upstream"], edge["downstream"]) for edge in graph["edges"]
    }


async def test_a_click_on_a_node_opens_the_task_in_the_drawer(
    user: User, registry: Registry
) -> None:
    await user.open(f"/builds/{registry.build_id}")
    await user.should_see("completed")

    user.find(ui.echart).trigger("chart:click", {"name": registry.root_task_id, "dataType": "node"})

    await user.should_see(kind=ui.label, content=registry.root_task_id)
    await user.should_see("Parameters")
    link = user.find("Open the task").elements.pop()
    assert isinstance(link, ui.link)
    assert link.props["href"] == f"/tasks/{registry.root_task_id}"


async def test_the_timeline_has_a_bar_for_each_task_that_ran(
    user: User, registry: Registry
) -> None:
    events = build_of(registry, registry.build_id)["events"]["nodes"]
    ran = {event["task"]["taskId"] for event in events if event["kind"] == "TASK_RUNNING"}
    assert ran

    await user.open(f"/builds/{registry.build_id}")
    await user.should_see("completed")

    (timeline,) = [c for c in user.find(ui.echart).elements if "build-timeline" in c.classes]
    assert isinstance(timeline, ui.echart)
    await eventually(lambda: len(timeline.options["yAxis"]["data"]) == len(ran))
    (bars,) = timeline.options["series"][1:]
    assert all(bar["value"] >= 0 for bar in bars["data"])


async def test_a_paused_tab_holds_events_back_and_catches_up_when_resumed(
    user: User, registry: Registry
) -> None:
    upstream = task("extract")
    downstream = task("load", upstream["taskId"])
    build_id = record_build(registry, [upstream, downstream], finish=False)
    await user.open(f"/builds/{build_id}")
    await user.should_see("pending 2")

    user.find("live").click()
    await user.should_see("paused")
    record_events(
        registry,
        build_id,
        [(upstream["taskId"], "TASK_RUNNING"), (upstream["taskId"], "TASK_COMPLETED")],
    )
    await asyncio.sleep(1.5)  # the subscription has the events by now; the tab shows none
    await user.should_see("pending 2")

    user.find("paused").click()

    await user.should_see("completed 1", retries=TICKS)
    await user.should_see("pending 1")
    statuses = {i["name"]: i["category"] for i in dag_chart_of(user).options["series"][0]["data"]}
    assert statuses[upstream["taskId"]] != statuses[downstream["taskId"]]


async def test_a_large_build_is_drawn_grouped_by_family_on_request(
    user: User, registry: Registry
) -> None:
    families = ("extract", "transform", "load")
    tasks: list[dict[str, Any]] = []
    for index in range(LARGE_GRAPH + 1):
        family = families[index % len(families)]
        dependencies = [tasks[-1]["taskId"]] if tasks else []
        tasks.append(task(family, *dependencies, namespace="big"))
    build_id = record_build(registry, tasks)

    await user.open(f"/builds/{build_id}")

    await user.should_see(f"This build has {len(tasks):,} tasks", retries=LOADING)
    assert not any("dag-chart" in chart.classes for chart in user.find(ui.echart).elements)
    user.find("Group by family (3 nodes)").click()
    await eventually(lambda: len(dag_chart_of(user).options["series"][0]["data"]) == 3)
    (series,) = dag_chart_of(user).options["series"]
    assert {item["name"] for item in series["data"]} == {f"big.{name}" for name in families}
    assert len(series["links"]) == 3  # extract -> transform -> load -> extract

    user.find(ui.echart).trigger("chart:click", {"name": "big.load", "dataType": "node"})

    await user.should_see("500 tasks: 500 pending")
