"""The GUI in headless Chromium: how long a person waits for a page, beside a floor.

    uv run --locked --all-extras python bench/gui.py               # 5 runs each
    uv run --locked --all-extras python bench/gui.py --runs 3 --only build-view

Each workload puts its data into a fresh registry through the public GraphQL API, serves the
GUI with `stardag up` (registry and GUI in one process, as a user runs it) and opens a page
in a fresh headless Chromium per run, timing from the navigation to the moment the page
shows everything the workload asks for. The floor draws the same ECharts options from a
static HTML page on loopback, with the ECharts bundle NiceGUI ships and no framework, no
websocket and no registry: what remains is the browser's own parse-and-draw time, so the
ratio is what the framework and the registry queries add on top of it.

A workload is a function from the number of runs to table rows, listed in `WORKLOADS`.
"""

import argparse
import contextlib
import json
import random
import tempfile
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nicegui
from workloads.browser import Row, graphql, print_table, stardag_up, static_page, time_page

from stardag_gui.graph import Node, chart_options

ECHARTS_BUNDLE = Path(nicegui.__file__).parent / "elements" / "echart" / "dist"
TASKS = 1_000
LAYERS = 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per contender (median)")
    parser.add_argument("--only", help="comma-separated workloads: " + ", ".join(WORKLOADS))
    arguments = parser.parse_args()
    chosen = arguments.only.split(",") if arguments.only else list(WORKLOADS)
    rows = [row for name in chosen for row in WORKLOADS[name](arguments.runs)]
    print_table(rows)


def build_view(runs: int) -> list[Row]:
    """The build view of a 1,000-task build, 20 layers, every task run once: until the DAG
    shows all its nodes and the header its counts (the first full render), opened by its URL
    in a cold browser, and reached from the builds list by a click on its row (the page
    already loaded, as a person gets there); and until the timeline has a bar for every run
    (its events arrive through the subscription). The builds list, opened cold, shows what
    the frame alone costs (NiceGUI's scripts, its websocket, one small query)."""
    with tempfile.TemporaryDirectory() as directory, stardag_up(Path(directory)) as url:
        workspace = graphql(url, "{ organizations { workspaces { id } } }")
        workspace_id = workspace["organizations"][0]["workspaces"][0]["id"]
        tasks = layered_tasks(TASKS, LAYERS)
        build_id = record_build(url, workspace_id, tasks)
        drawn = (
            "document.querySelector('.count-completed')?.textContent === 'completed "
            f"{TASKS}' && getElement(document.querySelector('.dag-chart'))?.chart?.getModel()"
            f"?.getSeriesByIndex(0)?.getData()?.count() === {TASKS}"
        )
        timeline = (
            "getElement(document.querySelector('.build-timeline'))?.chart?.getOption()"
            f"?.series?.[1]?.data?.length === {TASKS}"
        )
        opened = [time_page(f"{url}/builds/{build_id}", drawn, timeline) for _ in range(runs)]
        clicked = [
            time_page(f"{url}/", drawn, click=".builds-table tbody tr")[0] for _ in range(runs)
        ]
        listed = "document.querySelector('.builds-table tbody tr') !== null"
        builds_list = [time_page(f"{url}/", listed)[0] for _ in range(runs)]
        nodes = [Node(t["taskId"], t["name"], "COMPLETED", t["name"]) for t in tasks]
        edges = [(up, t["taskId"]) for t in tasks for up in t["dependencies"]]
        with static_chart(chart_options(nodes, edges)) as static_page:
            floor_drawn = (
                f"window.chart?.getModel()?.getSeriesByIndex(0)?.getData()?.count() === {TASKS}"
            )
            floor = [time_page(static_page, floor_drawn)[0] for _ in range(runs)]
    name = f"build view, {TASKS:,} tasks"
    return [
        Row(name, "static HTML page, same ECharts graph, cold browser (floor)", floor),
        Row(
            name,
            "stardag GUI, URL opened in a cold browser: DAG and counts",
            [o[0] for o in opened],
        ),
        Row(name, "stardag GUI, a click in the builds list: DAG and counts", clicked),
        Row(name, "stardag GUI, URL opened: timeline complete too", [o[1] for o in opened]),
        Row(name, "stardag GUI, the builds list opened in a cold browser", builds_list),
    ]


WORKLOADS: dict[str, Callable[[int], list[Row]]] = {"build-view": build_view}


def layered_tasks(count: int, layers: int) -> list[dict[str, Any]]:
    """``count`` tasks in ``layers`` layers, each needing two tasks of the layer below (a
    fixed seed, so every run draws the same graph)."""
    width = count // layers
    rng = random.Random(0)
    grid: list[list[dict[str, Any]]] = []
    for layer in range(layers):
        below = grid[-1] if grid else []
        grid.append(
            [
                {
                    "taskId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    "name": f"step_{layer}",
                    "namespace": "bench",
                    "parameters": {"layer": layer, "index": index},
                    "dependencies": [t["taskId"] for t in rng.sample(below, 2)] if below else [],
                }
                for index in range(width)
            ]
        )
    return [task for layer in grid for task in layer]


def record_build(url: str, workspace_id: str, tasks: list[dict[str, Any]]) -> str:
    """Report a finished build of ``tasks`` (each running for 10 ms in order) through the
    API, as the SDK would; the build's id."""
    build_id = graphql(
        url,
        "mutation($w: ID!) { startBuild(workspaceId: $w) { id } }",
        w=workspace_id,
    )["startBuild"]["id"]
    graphql(
        url,
        "mutation($w: ID!, $t: [TaskInput!]!, $b: ID) "
        "{ registerTasks(workspaceId: $w, tasks: $t, buildId: $b) { registered } }",
        w=workspace_id,
        t=tasks,
        b=build_id,
    )
    start = datetime.now(UTC)
    events = [
        {
            "eventId": uuid.uuid4().hex,
            "kind": kind,
            "occurredAt": (start + timedelta(milliseconds=10 * i + offset)).isoformat(),
            "taskId": task["taskId"],
            "buildId": build_id,
        }
        for i, task in enumerate(tasks)
        for kind, offset in (("TASK_RUNNING", 0), ("TASK_COMPLETED", 9))
    ]
    for first in range(0, len(events), 500):
        graphql(
            url,
            "mutation($w: ID!, $e: [EventInput!]!) "
            "{ recordEvents(workspaceId: $w, events: $e) { recorded } }",
            w=workspace_id,
            e=events[first : first + 500],
        )
    graphql(
        url, "mutation($b: ID!) { finishBuild(buildId: $b, status: COMPLETED) { id } }", b=build_id
    )
    return str(build_id)


def static_chart(options: dict[str, Any]) -> contextlib.AbstractContextManager[str]:
    """A static page on loopback that draws ``options`` with ECharts alone; yields its URL.
    The chart has the size the build view gives it (full width, 70% of the height)."""
    return static_page(
        "graph.html",
        "<!doctype html><html><body style='margin:0'>"
        "<div id='chart' style='width:100vw;height:70vh'></div>"
        "<script type='module'>"
        "import { echarts } from './index.js';"
        "window.chart = echarts.init(document.getElementById('chart'));"
        f"window.chart.setOption({json.dumps(options)});"
        "</script></body></html>",
        assets=ECHARTS_BUNDLE,
    )


if __name__ == "__main__":
    main()
