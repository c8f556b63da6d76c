"""The task explorer over 100,000 tasks in headless Chromium: time to the first full render.

    uv run --locked --all-extras python bench/gui_explorer.py               # 5 runs each
    uv run --locked --all-extras python bench/gui_explorer.py --tasks 10000 --runs 3

The tasks are registered through the public GraphQL API (`registerTasks`, 5,000 a request)
into a fresh `stardag up` (registry and GUI in one process on SQLite, as a user runs it).
Each run opens the page in a fresh headless Chromium and times from the navigation until
the table shows its first page of rows and the count of all matching tasks ("1-25 of
100000"), which is when a person can read it. Two views: the whole workspace, and a
parameter filter with two parameter columns (the view a link to `/tasks?...` reproduces).

Beside them: the floor, the same rows as a plain HTML table in a static page on loopback
(the browser's own parse-and-draw time, no framework, no registry); the registry's answers
to the page's two queries (the page of tasks with its count, the parameter names for the
filter bar) asked over HTTP from Python; and the GUI's frame around an empty sub page (what
NiceGUI and the header cost before the explorer adds anything). The queries and the frame
explain the explorer's time; the ratio to the floor is what it costs over a bare browser.
Target: under 1 s for the whole-workspace view.
"""

import argparse
import contextlib
import html
import random
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from workloads.browser import Row, graphql, print_table, stardag_up, static_page, time_page

from stardag_gui.pages.tasks import FILTER_KEYS, TASKS, View, condition

BATCH = 5_000
PAGE = 25
REGISTER = """
mutation($w: ID!, $tasks: [TaskInput!]!) { registerTasks(workspaceId: $w, tasks: $tasks) {
  registered } }
"""
WORKSPACES = "{ organizations { workspaces { id } } }"
FILTERED = View(conditions=(condition("param.partition", "=", "7"),), columns=("partition", "date"))
"""The filtered view: one task in 64, with two parameter columns."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000, help="tasks in the workspace")
    parser.add_argument("--runs", type=int, default=5, help="runs per contender (median)")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory, stardag_up(Path(directory)) as url:
        workspace_id = graphql(url, WORKSPACES)["organizations"][0]["workspaces"][0]["id"]
        started = time.perf_counter()
        register(url, workspace_id, arguments.tasks)
        print(f"registered {arguments.tasks} tasks in {time.perf_counter() - started:.1f} s\n")
        rows = []
        for name, view in (("whole workspace", View()), ("parameter filter", FILTERED)):
            rows.extend(contenders(url, workspace_id, name, view, arguments.runs))
        print_table(rows)


def contenders(url: str, workspace_id: str, name: str, view: View, runs: int) -> list[Row]:
    """The rows of one view: its floors, the queries alone, the bare frame, the explorer."""
    query = view.query_string()
    page = f"{url}/tasks" + (f"?{query}" if query else "")
    variables = {"w": workspace_id, "filter": view.task_filter()}
    tasks = graphql(url, TASKS, **variables, first=PAGE, after=None)["workspace"]["tasks"]
    with static_table(tasks["nodes"], view.columns) as floor:
        rows = [Row(name, "static HTML table (floor)", times(floor, FLOOR_DONE, runs))]
    for label, document, extra in (
        ("page query", TASKS, {"first": PAGE, "after": None}),
        ("filter keys query", FILTER_KEYS, {"filter": None}),
    ):
        seconds = query_times(url, document, {**variables, **extra}, runs)
        rows.append(Row(name, f"registry {label} alone", seconds))
    rows.append(Row(name, "GUI frame, empty page", times(f"{url}/empty", FRAME_DONE, runs)))
    rows.append(Row(name, "task explorer", times(page, explorer_done(tasks["totalCount"]), runs)))
    return rows


def register(url: str, workspace_id: str, count: int) -> None:
    """``count`` tasks of a few families with date, partition and seed parameters."""
    rng = random.Random(0)
    families = [("ingest", "load"), ("features", "aggregate"), ("training", "fit")]
    for start in range(0, count, BATCH):
        batch = []
        for i in range(start, min(start + BATCH, count)):
            namespace, name = families[i % len(families)]
            batch.append(
                {
                    "taskId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    "namespace": namespace,
                    "name": name,
                    "parameters": {
                        "date": f"2026-{i % 12 + 1:02d}-{i % 28 + 1:02d}",
                        "partition": i % 64,
                        "seed": rng.getrandbits(32),
                    },
                }
            )
        graphql(url, REGISTER, w=workspace_id, tasks=batch)


def explorer_done(total: int) -> str:
    """The page shows a full first page of rows and the count of all matching tasks."""
    shown = min(total, PAGE)
    return (
        f"document.querySelectorAll('.tasks-table tbody tr').length === {shown}"
        f" && document.querySelector('.page-position').textContent.endsWith('of {total}')"
    )


FLOOR_DONE = "document.querySelectorAll('tbody tr').length > 0"
"""The static table has its rows."""
FRAME_DONE = "document.body.textContent.includes('404: sub page')"
"""The frame (header, workspace selector) around a sub page that does not exist."""


def times(page: str, condition_js: str, runs: int) -> list[float]:
    """Seconds from navigating to ``page`` until ``condition_js`` holds, in fresh browsers."""
    return [time_page(page, condition_js)[0] for _ in range(runs)]


def query_times(url: str, document: str, variables: dict[str, Any], runs: int) -> list[float]:
    """Seconds the registry takes to answer ``document``, over HTTP."""
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        graphql(url, document, **variables)
        seconds.append(time.perf_counter() - started)
    return seconds


def static_table(
    tasks: list[dict[str, Any]], columns: tuple[str, ...]
) -> contextlib.AbstractContextManager[str]:
    """A static page on loopback with ``tasks`` as a plain HTML table; yields its URL."""
    header = ["task", "namespace", "status", "task id", *columns]
    cells = [
        [t["name"], t["namespace"], t["status"], t["taskId"][:8]]
        + [str(t["parameters"].get(column, "")) for column in columns]
        for t in tasks
    ]
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in cells
    )
    return static_page(
        "table.html",
        "<!doctype html><html><body><table><thead><tr>"
        + "".join(f"<th>{name}</th>" for name in header)
        + f"</tr></thead><tbody>{body}</tbody></table></body></html>",
    )


if __name__ == "__main__":
    main()
