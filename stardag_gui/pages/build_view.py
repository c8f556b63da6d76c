"""One build: its header (status, who, when, counts by status), its DAG coloured by status, a
timeline of its task runs, and a drawer with the task a click chose.

The page draws what one query answers, then follows the registry's ``buildEvents``
subscription from the build's first event: events gather as they arrive and a timer applies
them twice a second (recolouring nodes, extending the timeline, updating the counts) while
the tab is live; paused, they wait, and resuming applies them all. The events the build had
when the page asked are applied in one go once all have arrived, so a finished build's
history does not replay as flicker over statuses the query already answered. Both run in
NiceGUI timers, so leaving the page or closing the tab cancels them and closes the
subscription.
"""

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from nicegui import ui

from stardag_core.exceptions import RegistryError
from stardag_gui.context import Gui
from stardag_gui.graph import (
    STATUSES,
    Edge,
    Node,
    count_text,
    dag_chart,
    group_nodes,
    group_statuses,
    is_large,
    set_statuses,
)
from stardag_gui.style import STATUS_COLORS, parse_time, show_duration, show_time

HEADER_FIELDS = "id name status commit startedAt finishedAt user { displayName email }"
BUILD = f"""
query($w: ID!, $b: ID!) {{
  workspace(id: $w) {{
    build(id: $b) {{
      {HEADER_FIELDS}
      events(first: 1) {{ totalCount }}
      graph {{
        nodes {{ taskId namespace name parameters outputUri status }}
        edges {{ upstream downstream }}
      }}
    }}
  }}
}}
"""
HEADER = (
    f"query($w: ID!, $b: ID!) {{ workspace(id: $w) {{ build(id: $b) {{ {HEADER_FIELDS} }} }} }}"
)
EVENTS = """
subscription($b: ID!) {
  buildEvents(buildId: $b) { event { kind occurredAt taskId } }
}
"""
TASK_KINDS = {
    "TASK_PENDING": "PENDING",
    "TASK_RUNNING": "RUNNING",
    "TASK_COMPLETED": "COMPLETED",
    "TASK_FAILED": "FAILED",
    "TASK_CANCELLED": "CANCELLED",
}
TICK_SECONDS = 0.5
TIMELINE_ROWS = 40
"""Rows the timeline shows at once; a slider scrolls through the rest."""
PARAMETERS_SHOWN = 300
"""Characters of a task's parameters its tooltip shows (the drawer shows them all)."""


@dataclass(frozen=True)
class TaskInfo:
    """A task of the build, as the graph query answered it."""

    task_id: str
    namespace: str
    name: str
    parameters: dict[str, Any]
    output_uri: str | None

    @property
    def family(self) -> str:
        """``namespace.name``, or the name alone in the empty namespace."""
        return f"{self.namespace}.{self.name}" if self.namespace else self.name

    @property
    def parameters_text(self) -> str:
        """The parameters as indented JSON."""
        return json.dumps(self.parameters, indent=2, sort_keys=True)


@dataclass
class Run:
    """A task's run in this build: from its TASK_RUNNING event to its end event, if any yet."""

    started: datetime
    finished: datetime | None = None
    status: str = "RUNNING"


class BuildState:
    """What the page knows of a build: the query's answer, then the events applied to it."""

    def __init__(self, build: dict[str, Any]) -> None:
        self.id = str(build["id"])
        self.set_header(build)
        self.history = int(build["events"]["totalCount"])
        """How many events the build had when the page asked: the catch-up to wait for."""
        nodes = build["graph"]["nodes"]
        self.tasks = {
            node["taskId"]: TaskInfo(
                node["taskId"],
                node["namespace"],
                node["name"],
                node["parameters"],
                node["outputUri"],
            )
            for node in nodes
        }
        self.edges: list[Edge] = [
            (edge["upstream"], edge["downstream"]) for edge in build["graph"]["edges"]
        ]
        self.statuses: dict[str, str] = {node["taskId"]: node["status"] for node in nodes}
        self.runs: dict[str, Run] = {}
        self._status_at: dict[str, datetime] = {}

    def set_header(self, build: dict[str, Any]) -> None:
        """Take the build's own fields (name, status, user, commit, times) from ``build``."""
        user = build["user"] or {}
        self.name = str(build["name"])
        self.status = str(build["status"])
        self.user = user.get("displayName") or user.get("email") or "—"
        self.commit = build["commit"] or "—"
        self.started_at = build["startedAt"]
        self.finished_at = build["finishedAt"]

    def apply(self, events: Sequence[dict[str, Any]]) -> set[str]:
        """Apply task events (as ``buildEvents`` sends them, in the order they were recorded);
        the ids of the tasks whose status changed. A task's status follows its latest event
        by occurrence, so an event reported late does not undo a newer one."""
        changed = set()
        for event in events:
            task_id = event["taskId"]
            status = TASK_KINDS.get(event["kind"])
            if task_id is None or status is None or task_id not in self.tasks:
                continue
            moment = datetime.fromisoformat(event["occurredAt"])
            self._record_run(task_id, status, moment)
            if task_id in self._status_at and moment < self._status_at[task_id]:
                continue
            self._status_at[task_id] = moment
            if self.statuses[task_id] != status:
                self.statuses[task_id] = status
                changed.add(task_id)
        return changed

    def _record_run(self, task_id: str, status: str, moment: datetime) -> None:
        if status == "RUNNING":
            self.runs[task_id] = Run(moment)
        elif status != "PENDING" and (run := self.runs.get(task_id)) and run.finished is None:
            run.finished = moment
            run.status = status

    def counts(self) -> dict[str, int]:
        """How many of the build's tasks are in each status."""
        counts = Counter(self.statuses.values())
        return {status: counts[status] for status in STATUSES}

    def node(self, task_id: str) -> Node:
        """The task as a graph node: its family as the label, its id and parameters in the
        tooltip."""
        task = self.tasks[task_id]
        parameters = json.dumps(task.parameters, sort_keys=True)
        if len(parameters) > PARAMETERS_SHOWN:
            parameters = parameters[:PARAMETERS_SHOWN] + "…"
        tooltip = f"{task.family}\n{task_id}\n{parameters}"
        return Node(task_id, task.family, self.statuses[task_id], tooltip)


async def build_view_page(gui: Gui, build_id: str) -> None:
    """The view of build ``build_id`` of the chosen workspace."""
    try:
        data = await gui.query(BUILD, w=gui.workspace_id, b=build_id)
    except RegistryError as error:
        not_found(str(error))
        return
    build = (data["workspace"] or {}).get("build")
    if build is None:
        not_found(f"The workspace has no build {build_id!r}.")
        return
    BuildView(gui, BuildState(build)).show()


def not_found(message: str) -> None:
    """What the page shows for a build it cannot show."""
    with ui.card().classes("max-w-2xl"):
        ui.label("No such build").classes("text-h6")
        ui.label(message)
        ui.link("All builds", "/")


class BuildView:
    """The page's elements and how events change them."""

    def __init__(self, gui: Gui, state: BuildState) -> None:
        self.gui = gui
        self.state = state
        self.pending: list[dict[str, Any]] = []
        self.received = 0
        self.chart: ui.echart | None = None
        self.group_of: dict[str, str] | None = None

    def show(self) -> None:
        """Lay the page out and start following the build."""
        self.header()
        with ui.card().classes("w-full p-2") as self.graph_area:
            if is_large(len(self.state.tasks)):
                self.offer_grouping()
            else:
                self.draw(grouped=False)
        ui.label("Timeline").classes("text-h6")
        self.timeline = ui.echart(timeline_options(self.state, datetime.now(UTC)))
        self.timeline.classes("build-timeline").style("width: 100%; height: 24rem")
        with ui.dialog().props("position=right full-height") as self.drawer:
            self.drawer_body = ui.card().classes("task-drawer w-[32rem] max-w-full h-full")
        ui.timer(0, self.follow, once=True)
        ui.timer(TICK_SECONDS, self.tick)

    def header(self) -> None:
        """The build's name, status, user, commit, times and counts by status."""
        state = self.state
        ui.label(state.name).classes("text-h5 build-name")
        with ui.row().classes("items-center gap-4"):
            self.status_badge = ui.badge(state.status).classes("build-status text-sm")
            ui.label(f"by {state.user}").classes("build-user")
            ui.label(f"commit {state.commit[:10]}").classes("build-commit").tooltip(state.commit)
            ui.label(f"started {show_time(state.started_at)}").classes("build-started")
            self.duration = ui.label().classes("build-duration")
        with ui.row().classes("gap-2"):
            self.count_badges = {
                status: ui.badge(color=STATUS_COLORS[status]).classes(
                    f"task-count count-{status.lower()} text-sm"
                )
                for status in STATUSES
            }
        self.notice = ui.label().classes("text-negative live-notice")
        self.notice.set_visibility(False)
        self.refresh_header()

    def refresh_header(self) -> None:
        """Show the state's status, duration and counts."""
        state = self.state
        self.status_badge.set_text(state.status)
        self.status_badge.props(f"color={STATUS_COLORS.get(state.status, 'grey')}")
        verb = "running for" if state.finished_at is None else "took"
        self.duration.set_text(f"{verb} {show_duration(state.started_at, state.finished_at)}")
        for status, count in state.counts().items():
            self.count_badges[status].set_text(f"{status.lower()} {count}")

    def offer_grouping(self) -> None:
        """Ask before drawing a large graph: grouped by family, or all of it."""
        count = len(self.state.tasks)
        families = len({task.family for task in self.state.tasks.values()})
        with ui.column().classes("large-graph p-4 gap-2"):
            ui.label(f"This build has {count:,} tasks; drawing them all takes a while.")
            with ui.row().classes("gap-2"):
                ui.button(
                    f"Group by family ({families:,} nodes)", on_click=lambda: self.draw(True)
                ).classes("group-graph")
                ui.button("Draw all anyway", on_click=lambda: self.draw(False)).props(
                    "outline"
                ).classes("draw-all")

    def draw(self, grouped: bool) -> None:
        """Draw the DAG, one node per task or one per family."""
        nodes = [self.state.node(task_id) for task_id in self.state.tasks]
        edges = self.state.edges
        self.graph_area.clear()
        with self.graph_area:
            if grouped:
                self.group_of = {task_id: t.family for task_id, t in self.state.tasks.items()}
                nodes, edges = group_nodes(nodes, edges, self.group_of)
                self.chart = dag_chart(nodes, edges, on_click=self.open_family)
            else:
                self.chart = dag_chart(nodes, edges, on_click=self.open_task)

    async def follow(self) -> None:
        """Gather the build's events until it has finished, then its final header."""
        try:
            async for result in self.gui.client.subscribe(EVENTS, b=self.state.id):
                self.pending.append(result["buildEvents"]["event"])
                self.received += 1
            data = await self.gui.query(HEADER, w=self.gui.workspace_id, b=self.state.id)
        except RegistryError as error:
            self.state.history = self.received  # show what did arrive
            self.notice.set_text(f"Live updates stopped: {error}")
            self.notice.set_visibility(True)
            return
        if build := (data["workspace"] or {}).get("build"):
            self.state.set_header(build)

    def tick(self) -> None:
        """Apply the events gathered since the last tick, unless the tab is paused or the
        build's history has not all arrived yet."""
        if not self.gui.live or self.received < self.state.history:
            return
        events, self.pending = self.pending, []
        changed = self.state.apply(events)
        if changed and self.chart is not None:
            set_statuses(self.chart, self.shown_statuses(changed))
        running = any(run.finished is None for run in self.state.runs.values())
        if events or running:
            self.timeline.options.update(timeline_options(self.state, datetime.now(UTC)))
            self.timeline.update()
        self.refresh_header()

    def shown_statuses(self, changed: set[str]) -> dict[str, str]:
        """The statuses to show for the changed tasks: theirs, or their families' if grouped."""
        if self.group_of is None:
            return {task_id: self.state.statuses[task_id] for task_id in changed}
        return group_statuses(self.state.statuses, self.group_of)

    def open_task(self, task_id: str) -> None:
        """Show a task in the drawer: status, parameters, output and its run in this build."""
        task = self.state.tasks[task_id]
        status = self.state.statuses[task_id]
        self.drawer_body.clear()
        with self.drawer_body:
            ui.label(task.family).classes("text-h6 drawer-name break-all")
            ui.badge(status, color=STATUS_COLORS.get(status, "grey")).classes("drawer-status")
            ui.label(task_id).classes("text-caption font-mono")
            if run := self.state.runs.get(task_id):
                finished = run.finished.isoformat() if run.finished else None
                ui.label(f"ran {show_duration(run.started.isoformat(), finished)}")
            ui.label("Parameters").classes("text-subtitle2")
            ui.label(task.parameters_text).classes(
                "drawer-parameters font-mono text-xs whitespace-pre-wrap break-all"
            )
            ui.label("Output").classes("text-subtitle2")
            ui.label(task.output_uri or "—").classes("drawer-output font-mono text-xs break-all")
            ui.link("Open the task", f"/tasks/{task_id}").classes("drawer-link")
        self.drawer.open()

    def open_family(self, family: str) -> None:
        """Show a family of the grouped graph in the drawer: its tasks' counts by status."""
        assert self.group_of is not None
        statuses = [
            self.state.statuses[task_id]
            for task_id, group in self.group_of.items()
            if group == family
        ]
        self.drawer_body.clear()
        with self.drawer_body:
            ui.label(family).classes("text-h6 drawer-name break-all")
            ui.label(f"{len(statuses):,} tasks: {count_text(statuses)}")
        self.drawer.open()


def timeline_options(state: BuildState, now: datetime) -> dict[str, Any]:
    """A Gantt chart of the build's task runs, by start: one bar per run from its start to
    its end (to ``now`` while it runs), coloured by how it ended, in seconds from the build's
    start. Two stacked bar series: an invisible offset, then the run."""
    origin = parse_time(state.started_at) or now
    runs = sorted(state.runs.items(), key=lambda item: item[1].started)
    labels = [f"{state.tasks[task_id].family} {task_id[:8]}" for task_id, _ in runs]
    offsets = [max(0.0, (run.started - origin).total_seconds()) for _, run in runs]
    bars = [
        {
            "value": ((run.finished or now) - run.started).total_seconds(),
            "itemStyle": {"color": STATUS_COLORS[run.status]},
            "tooltip": {
                "formatter": f"{label}\n{run.status.lower()} "
                f"{show_duration(run.started.isoformat(), (run.finished or now).isoformat())}"
            },
        }
        for label, (_, run) in zip(labels, runs, strict=True)
    ]
    options: dict[str, Any] = {
        "animation": False,
        "tooltip": {"renderMode": "richText", "confine": True},
        "grid": {"left": 8, "right": 48, "top": 16, "bottom": 24, "containLabel": True},
        "xAxis": {"type": "value", "name": "s"},
        "yAxis": {
            "type": "category",
            "data": labels,
            "inverse": True,
            "axisLabel": {"width": 240, "overflow": "truncate"},
        },
        "series": [
            {
                "type": "bar",
                "stack": "run",
                "silent": True,
                "itemStyle": {"color": "transparent"},
                "tooltip": {"show": False},
                "data": offsets,
            },
            {"type": "bar", "stack": "run", "barMaxWidth": 14, "data": bars},
        ],
        "dataZoom": [],
    }
    if len(runs) > TIMELINE_ROWS:
        # A span rather than a window: an update then keeps where the person scrolled to.
        options["dataZoom"] = [
            {"type": "slider", "yAxisIndex": 0, "maxValueSpan": TIMELINE_ROWS - 1},
            {"type": "inside", "yAxisIndex": 0, "zoomOnMouseWheel": False},
        ]
    return options
