"""One task in detail: its parameters, output, status history, the tasks it needs and that
need it, its lineage as a graph (upstream or downstream, to a chosen depth), the assets it
published and its log, which follows new lines while the task runs.

Everything a pipeline wrote (names, parameters, markdown, log lines) is shown as text: the
markdown of an asset is rendered with its raw HTML escaped, never interpreted.
"""

import logging
from dataclasses import dataclass, field
from typing import Any

import markdown2
from nicegui import ui

from stardag_core.exceptions import RegistryError
from stardag_gui.context import Gui
from stardag_gui.graph import Node, dag_chart
from stardag_gui.pages.builds import no_workspace
from stardag_gui.style import STATUS_COLORS, show_time

TASK = """
query($w: ID!, $t: String!) {
  workspace(id: $w) {
    task(taskId: $t) {
      taskId namespace name version parameters outputUri status createdAt
      dependencies { taskId namespace name status }
      dependents { taskId namespace name status }
      events(first: 100) { totalCount nodes { kind occurredAt payload build { id name } } }
      assets { name kind body data createdAt }
    }
  }
}
"""
LINEAGE_NODE = "taskId namespace name status depth"
LINEAGE = """
query($w: ID!, $t: String!, $depth: Int, $most: Int!) {
  workspace(id: $w) {
    task(taskId: $t) {
      lineage: DIRECTION(maxDepth: $depth, maxNodes: $most) {
        __typename
        ... on Lineage { nodes { NODE } edges { upstream downstream } }
        ... on TruncatedLineage { nodes { NODE } edges { upstream downstream } maxNodes }
      }
    }
  }
}
""".replace("NODE", LINEAGE_NODE)
LOGS = """
query($w: ID!, $t: String!, $after: Int, $first: Int!) {
  workspace(id: $w) {
    task(taskId: $t) { status logs(after: $after, first: $first) { seq stream text loggedAt } }
  }
}
"""
DEPTHS = {1: "1", 2: "2", 3: "3", 5: "5", 0: "all"}
"""Lineage depths to choose from (0: the whole lineage)."""
LINEAGE_NODES = 500
"""The most tasks a lineage graph draws (the nearest ones)."""
LINKS_SHOWN = 100
"""The most dependencies (and dependents) listed as links."""
LOG_PAGE = 1000
LOG_LINES_KEPT = 5000
"""Lines the log view holds; older ones scroll out."""
FOLLOW_EVERY = 1.0
"""Seconds between looks for new log lines while following."""
LEVELS = {
    0: "all",
    logging.INFO: "info and above",
    logging.WARNING: "warnings and errors",
    logging.ERROR: "errors",
}
"""The levels the log view filters on: a line shows when its level is at least the chosen one."""
STREAM_LEVELS = {"stdout": logging.INFO, "stderr": logging.WARNING}
"""The level of a printed line: stdout counts as info, stderr as a warning."""
MARKDOWN_EXTRAS = ["fenced-code-blocks", "tables"]
TIMELINE_COLORS = {
    "RUNNING": "primary",
    "COMPLETED": "positive",
    "FAILED": "negative",
    "CANCELLED": "orange",
}
"""Quasar's names for the status colours (a timeline entry takes no CSS colour)."""


async def task_page(gui: Gui, task_id: str) -> None:
    """The detail page of the task with stardag id ``task_id``."""
    if gui.workspace is None:
        no_workspace()
        return
    try:
        data = await gui.query(TASK, w=gui.workspace_id, t=task_id)
    except RegistryError as error:
        ui.label(f"The registry did not answer: {error}").classes("text-negative")
        return
    task = data["workspace"]["task"]
    if task is None:
        with ui.card().classes("max-w-2xl no-task"):
            ui.label(f"No task {task_id} in this workspace").classes("text-h6")
            ui.label("It may belong to another workspace: choose one in the header.")
            ui.link("All tasks", "/tasks")
        return
    with ui.row().classes("items-center gap-3"):
        ui.label(family(task)).classes("text-h5 task-title")
        status_badge = ui.badge(task["status"]).classes("task-status")
        status_badge.style(f"background: {STATUS_COLORS[task['status']]} !important")
    ui.label(f"{task['taskId']} · version {task['version'] or '—'}").classes("text-caption")
    overview_panel(task)
    with ui.card().classes("w-full"):
        ui.label("Lineage").classes("text-h6")
        await LineageView(gui, task).build()
    with ui.card().classes("w-full"):
        ui.label(f"Assets ({len(task['assets'])})").classes("text-h6")
        assets_panel(task["assets"])
    with ui.card().classes("w-full"):
        ui.label("Log").classes("text-h6")
        await LogView(gui, task_id, status_badge).build()


def family(task: dict[str, Any]) -> str:
    """A task's name with its namespace: ``stardag.demo.measure``."""
    return f"{task['namespace']}.{task['name']}" if task["namespace"] else task["name"]


def overview_panel(task: dict[str, Any]) -> None:
    """Parameters, output, status history, dependencies and dependents."""
    with ui.grid(columns=2).classes("w-full gap-4"):
        with ui.card().classes("w-full"):
            ui.label("Parameters").classes("text-h6")
            ui.json_editor(
                {"content": {"json": own_parameters(task)}, "readOnly": True, "mode": "tree"}
            ).classes("w-full task-parameters").mark("task-parameters")
            ui.label("Output").classes("text-h6")
            ui.label(task["outputUri"] or "— (none registered)").classes(
                "font-mono break-all task-output"
            )
        with ui.card().classes("w-full"):
            ui.label("Status history").classes("text-h6")
            status_history(task["events"])
    with ui.grid(columns=2).classes("w-full gap-4"):
        with ui.card().classes("w-full task-dependencies"):
            ui.label(f"Needs ({len(task['dependencies'])})").classes("text-h6")
            task_links(task["dependencies"])
        with ui.card().classes("w-full task-dependents"):
            ui.label(f"Needed by ({len(task['dependents'])})").classes("text-h6")
            task_links(task["dependents"])


def own_parameters(task: dict[str, Any]) -> Any:
    """The task's parameters without the family keys (``__name``, ``__namespace``) that the
    title already shows."""
    parameters = task["parameters"]
    if not isinstance(parameters, dict):
        return parameters
    return {key: value for key, value in parameters.items() if not key.startswith("__")}


def status_history(events: dict[str, Any]) -> None:
    """The task's events, oldest first, with the build each happened in."""
    if not events["nodes"]:
        ui.label("No events recorded yet.")
        return
    with ui.timeline(side="right").classes("task-events"):
        for event in events["nodes"]:
            kind = event["kind"].removeprefix("TASK_")
            build = event["build"]
            with ui.timeline_entry(
                title=kind, subtitle=show_time(event["occurredAt"]), color=timeline_color(kind)
            ):
                if build is not None:
                    ui.label(f"in build {build['name']}")
                error = event["payload"].get("error") if event["payload"] else None
                if error:
                    ui.label(str(error)).classes("text-negative font-mono whitespace-pre-wrap")
    if events["totalCount"] > len(events["nodes"]):
        ui.label(f"The first {len(events['nodes'])} of {events['totalCount']} events.")


def timeline_color(kind: str) -> str:
    """The Quasar colour of an event of ``kind`` (a status name, or something else)."""
    return TIMELINE_COLORS.get(kind, "grey")


def task_links(tasks: list[dict[str, Any]]) -> None:
    """Links to ``tasks``' detail pages, each with its status."""
    if not tasks:
        ui.label("None.")
        return
    for other in tasks[:LINKS_SHOWN]:
        with ui.row().classes("items-center gap-2"):
            ui.badge(other["status"]).style(
                f"background: {STATUS_COLORS[other['status']]} !important"
            )
            ui.link(family(other), f"/tasks/{other['taskId']}").classes("task-link")
    if len(tasks) > LINKS_SHOWN:
        ui.label(f"and {len(tasks) - LINKS_SHOWN} more")


class LineageView:
    """The lineage graph with its direction and depth controls."""

    def __init__(self, gui: Gui, task: dict[str, Any]) -> None:
        self.gui = gui
        self.task = task
        self.direction = "upstream"
        self.depth = 2

    async def build(self) -> None:
        """The controls, then the graph of the current choice."""
        with ui.row().classes("items-center gap-4"):
            ui.toggle(
                {
                    "upstream": "Upstream (what it needs)",
                    "downstream": "Downstream (what needs it)",
                },
                value=self.direction,
                on_change=lambda event: self.choose(direction=event.value),
            ).classes("lineage-direction").mark("lineage-direction")
            ui.select(
                DEPTHS,
                value=self.depth,
                label="Depth",
                on_change=lambda event: self.choose(depth=event.value),
            ).classes("w-24 lineage-depth").mark("lineage-depth")
        self.area = ui.column().classes("w-full lineage-area")
        await self.draw()

    async def choose(self, *, direction: str | None = None, depth: int | None = None) -> None:
        """Draw again in a new direction or to a new depth."""
        self.direction = direction or self.direction
        self.depth = self.depth if depth is None else depth
        await self.draw()

    async def draw(self) -> None:
        """Ask the registry for the lineage and draw it (the task itself included)."""
        try:
            data = await self.gui.query(
                LINEAGE.replace("DIRECTION", self.direction),
                w=self.gui.workspace_id,
                t=self.task["taskId"],
                depth=self.depth or None,
                most=LINEAGE_NODES,
            )
        except RegistryError as error:
            self.area.clear()
            with self.area:
                ui.label(f"The registry did not answer: {error}").classes("text-negative")
            return
        lineage = data["workspace"]["task"]["lineage"]
        self.area.clear()
        with self.area:
            if lineage["__typename"] == "TruncatedLineage":
                ui.label(
                    f"This lineage is larger than {lineage['maxNodes']} tasks: the nearest "
                    f"{lineage['maxNodes']} are drawn. Choose a smaller depth to see all of it."
                ).classes("text-warning lineage-truncated")
            ui.label(
                f"{len(lineage['nodes'])} tasks {self.direction}"
                + (f" within {steps(self.depth)}" if self.depth else "")
            ).classes("lineage-count")
            nodes = [lineage_node(self.task, 0)] + [
                lineage_node(node, node["depth"]) for node in lineage["nodes"]
            ]
            edges = [(edge["upstream"], edge["downstream"]) for edge in lineage["edges"]]
            dag_chart(nodes, edges, on_click=lambda task_id: ui.navigate.to(f"/tasks/{task_id}"))


def lineage_node(task: dict[str, Any], depth: int) -> Node:
    """A task of a lineage as a graph node; its tooltip says what it is and how far."""
    distance = "this task" if depth == 0 else f"{steps(depth)} away"
    return Node(
        task["taskId"],
        task["name"],
        task["status"],
        f"{family(task)} · {task['status'].lower()} · {distance}",
    )


def steps(count: int) -> str:
    """``1 step``, ``2 steps``."""
    return f"{count} step{'' if count == 1 else 's'}"


def assets_panel(assets: list[dict[str, Any]]) -> None:
    """Each asset: markdown rendered (its raw HTML escaped), JSON in a read-only viewer."""
    if not assets:
        ui.label("This task published no assets.")
        return
    for asset in assets:
        with ui.card().classes("w-full task-asset"):
            with ui.row().classes("items-center gap-2"):
                ui.label(asset["name"]).classes("text-h6 asset-name")
                ui.label(f"{asset['kind'].lower()} · {show_time(asset['createdAt'])}").classes(
                    "text-caption"
                )
            if asset["kind"] == "MARKDOWN":
                ui.html(markdown_html(asset["body"] or ""), sanitize=True).classes(
                    "nicegui-markdown w-full asset-markdown"
                ).mark("asset-markdown")
            else:
                ui.json_editor(
                    {"content": {"json": asset["data"]}, "readOnly": True, "mode": "tree"}
                ).classes("w-full asset-json").mark("asset-json")


def markdown_html(text: str) -> str:
    """Markdown as HTML, with any HTML written in the markdown escaped to text: a pipeline's
    report shows what it says, and cannot script the page."""
    return str(markdown2.markdown(text, safe_mode="escape", extras=MARKDOWN_EXTRAS))


@dataclass
class LogLines:
    """The log lines read so far (the newest ``LOG_LINES_KEPT``) and the last line number."""

    lines: list[dict[str, Any]] = field(default_factory=list)
    last: int | None = None

    def add(self, new: list[dict[str, Any]]) -> None:
        """Keep ``new`` lines after the ones read before."""
        if new:
            self.lines = (self.lines + new)[-LOG_LINES_KEPT:]
            self.last = new[-1]["seq"]


def line_level(line: dict[str, Any]) -> int:
    """The level of a log line: a logging record's own, or its stream's for printed text."""
    if line["stream"] == "log":
        first = line["text"].split(" ", 1)[0]
        level = logging.getLevelNamesMapping().get(first)
        if level is not None:
            return level
    return STREAM_LEVELS.get(line["stream"], logging.INFO)


def show_line(line: dict[str, Any]) -> str:
    """A log line as the view shows it: number, stream, text."""
    return f"{line['seq']:>5}  {line['stream']:<6}  {line['text']}"


def line_classes(line: dict[str, Any]) -> str:
    """Colour for warnings and errors."""
    level = line_level(line)
    if level >= logging.ERROR:
        return "text-negative log-line"
    if level >= logging.WARNING:
        return "text-warning log-line"
    return "log-line"


class LogView:
    """The task's log with a level filter; in follow mode one timer asks for new lines while
    the view is live."""

    def __init__(self, gui: Gui, task_id: str, status_badge: ui.badge) -> None:
        self.gui = gui
        self.task_id = task_id
        self.status_badge = status_badge
        self.read = LogLines()
        self.level = 0

    async def build(self) -> None:
        """The controls, the lines so far, and the follow timer."""
        with ui.row().classes("items-center gap-4"):
            ui.select(
                LEVELS, value=self.level, label="Level", on_change=lambda e: self.filter(e.value)
            ).classes("w-48 log-level").mark("log-level")
            self.follow = (
                ui.switch("Follow new lines", value=True).classes("log-follow").mark("log-follow")
            )
            self.follow.tooltip("Ask for new lines every second while the header says live")
        self.problem = ui.label().classes("text-negative log-problem")
        self.empty = ui.label("No log lines yet.").classes("log-empty")
        self.log = (
            ui.log(max_lines=LOG_LINES_KEPT)
            .classes("w-full h-[60vh] font-mono task-log")
            .mark("task-log")
        )
        await self.fetch()
        ui.timer(FOLLOW_EVERY, self.poll)

    async def poll(self) -> None:
        """A follow-mode look for new lines (none while paused or not following)."""
        if self.follow.value and self.gui.live:
            await self.fetch()

    async def fetch(self) -> None:
        """Read the lines after the last one read (up to ``LOG_LINES_KEPT`` at a time, so a
        long log streams in over several looks) and show those the level lets through."""
        try:
            for _ in range(LOG_LINES_KEPT // LOG_PAGE):
                data = await self.gui.query(
                    LOGS,
                    w=self.gui.workspace_id,
                    t=self.task_id,
                    after=self.read.last,
                    first=LOG_PAGE,
                )
                task = data["workspace"]["task"]
                new = task["logs"]
                self.read.add(new)
                self.show(new)
                if len(new) < LOG_PAGE:
                    break
        except RegistryError as error:
            self.problem.set_text(f"The registry did not answer: {error}")
            return
        self.problem.set_text("")
        status = task["status"]
        self.status_badge.set_text(status)
        self.status_badge.style(f"background: {STATUS_COLORS[status]} !important")

    def show(self, lines: list[dict[str, Any]]) -> None:
        """Append the lines of the chosen level or above."""
        for line in lines:
            if line_level(line) >= self.level:
                self.log.push(show_line(line), classes=line_classes(line))
        self.empty.set_visibility(not self.read.lines)

    def filter(self, level: int) -> None:
        """Show the lines read so far again, at ``level`` and above."""
        self.level = level
        self.log.clear()
        self.show(self.read.lines)
