"""Drawing a DAG: a layered layout computed in Python, shown as an ECharts graph.

The layer of a node is its longest path from a source (Kahn's topological order); a few
barycenter sweeps (down by predecessors, up by successors) order the nodes within their
layer so that edges cross less; x is the position centred in the layer, y the layer. About
7 ms for 1,000 nodes; the browser then only draws (no layout in JavaScript)::

    chart = dag_chart(nodes, edges, on_click=open_drawer)
    set_statuses(chart, {"<task id>": "COMPLETED"})   # live updates

A graph too large to draw at once (above `LARGE_GRAPH` nodes) can be drawn grouped: one node
per group (a task family, say) with its count, via `group_nodes` and `group_statuses`.
"""

from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nicegui import events, ui

from stardag_gui.style import STATUS_COLORS

STATUSES = list(STATUS_COLORS)
LABELS_UP_TO = 200
"""Above this many nodes labels are hidden (they would overlap); tooltips still name them."""
SWEEPS = 4
CHART_SIZE = "width: 100%; height: 70vh"
"""Inline, not Tailwind classes: the size is then known when ECharts starts, which spares a
second full drawing when the classes' CSS arrives (half a second at 1,000 nodes)."""
PADDING = {"left": 24, "right": 160, "top": 24, "bottom": 48}
"""Pixels kept free around the fitted graph."""
LARGE_GRAPH = 1_500
"""Above this many nodes a page offers grouping before drawing (drawing takes seconds)."""
URGENCY = ("FAILED", "RUNNING", "PENDING", "CANCELLED", "COMPLETED")
"""Which member status a group shows: the first one any member has."""


@dataclass(frozen=True)
class Node:
    """A node to draw: its id (returned on click), what it shows, and its status."""

    id: str
    label: str
    status: str
    tooltip: str = ""


Edge = tuple[str, str]
"""(upstream, downstream): the arrow points from what is needed to what needs it."""


def layers(nodes: Sequence[str], edges: Sequence[Edge]) -> dict[str, int]:
    """Each node's layer: the length of the longest path reaching it from a source. Nodes on
    a cycle (bad data) go one layer below everything else rather than hang the layout."""
    successors: dict[str, list[str]] = defaultdict(list)
    indegree = dict.fromkeys(nodes, 0)
    for upstream, downstream in edges:
        if upstream in indegree and downstream in indegree:
            successors[upstream].append(downstream)
            indegree[downstream] += 1
    layer = dict.fromkeys(nodes, 0)
    ready = deque(node for node, degree in indegree.items() if degree == 0)
    placed = 0
    while ready:
        node = ready.popleft()
        placed += 1
        for successor in successors[node]:
            layer[successor] = max(layer[successor], layer[node] + 1)
            indegree[successor] -= 1
            if indegree[successor] == 0:
                ready.append(successor)
    if placed < len(layer):
        below = max(layer.values(), default=0) + 1
        for node, degree in indegree.items():
            if degree > 0:
                layer[node] = below
    return layer


def layout(nodes: Sequence[str], edges: Sequence[Edge]) -> dict[str, tuple[float, int]]:
    """Positions (x centred in its layer, y = layer) of every node."""
    layer_of = layers(nodes, edges)
    rows: dict[int, list[str]] = defaultdict(list)
    for node in nodes:
        rows[layer_of[node]].append(node)
    predecessors: dict[str, list[str]] = defaultdict(list)
    successors: dict[str, list[str]] = defaultdict(list)
    for upstream, downstream in edges:
        if upstream in layer_of and downstream in layer_of:
            predecessors[downstream].append(upstream)
            successors[upstream].append(downstream)
    depth = sorted(rows)
    position = {node: float(i) for row in rows.values() for i, node in enumerate(row)}
    for sweep in range(SWEEPS):
        downward = sweep % 2 == 0
        neighbours = predecessors if downward else successors
        for level in depth if downward else reversed(depth):
            row = rows[level]
            row.sort(key=lambda node: _barycenter(node, neighbours, position))
            position.update((node, float(i)) for i, node in enumerate(row))
    return {
        node: (index - (len(row) - 1) / 2, level)
        for level, row in rows.items()
        for index, node in enumerate(row)
    }


def _barycenter(node: str, neighbours: dict[str, list[str]], position: dict[str, float]) -> float:
    around = neighbours[node]
    if not around:
        return position[node]
    return sum(position[other] for other in around) / len(around)


def chart_options(nodes: Sequence[Node], edges: Sequence[Edge]) -> dict[str, Any]:
    """The ECharts options of the graph: nodes coloured by status, laid out in layers, fitted
    to the chart and centred; zoom and pan with the mouse. Tooltips and labels are plain
    text (ECharts' rich-text mode), so names render as typed, never as HTML."""
    positions = layout([node.id for node in nodes], edges)
    widest = max((abs(x) for x, _ in positions.values()), default=1.0) or 1.0
    depth = max((y for _, y in positions.values()), default=1) or 1
    spread = max(1.0, widest / depth)  # keep layers apart when the graph is wide
    labels = len(nodes) <= LABELS_UP_TO
    return {
        "animation": False,
        "tooltip": {"renderMode": "richText", "confine": True},
        "legend": {"data": STATUSES, "bottom": 0},
        "series": [
            {
                "type": "graph",
                "layout": "none",
                "roam": True,
                # Room for the labels right of the nodes and for the legend below; scaled
                # alike both ways, so that nodes stay round.
                **PADDING,
                "preserveAspect": "contain",
                "symbolSize": 14 if labels else 8,
                "edgeSymbol": ["none", "arrow"],
                "edgeSymbolSize": 6,
                "emphasis": {"focus": "adjacency"},
                "label": {"show": labels, "position": "right"},
                # ECharts 6 draws a perfectly vertical straight edge beside its nodes; a
                # curve too slight to see is drawn where it belongs.
                "lineStyle": {"opacity": 0.6, "curveness": 1e-4},
                "categories": [
                    {"name": status, "itemStyle": {"color": color}}
                    for status, color in STATUS_COLORS.items()
                ],
                "data": [
                    {
                        "name": node.id,
                        "x": positions[node.id][0],
                        "y": positions[node.id][1] * spread,
                        "category": _category(node.status),
                        "tooltip": {"formatter": node.tooltip or node.label},
                        # Hidden labels are not sent at all (a tenth of a large graph's size).
                        **({"label": {"formatter": node.label}} if labels else {}),
                    }
                    for node in nodes
                ],
                "links": [
                    {"source": upstream, "target": downstream} for upstream, downstream in edges
                ],
            }
        ],
    }


def dag_chart(
    nodes: Sequence[Node], edges: Sequence[Edge], *, on_click: Callable[[str], Any]
) -> ui.echart:
    """The graph as an ECharts element; clicking a node calls ``on_click`` with its id."""

    def clicked(event: events.GenericEventArguments) -> Any:
        if event.args.get("dataType") == "node":
            return on_click(str(event.args["name"]))
        return None

    return DagChart(chart_options(nodes, edges), clicked)


class DagChart(ui.echart):
    """An ECharts graph that is drawn once when it appears.

    NiceGUI draws a chart when it mounts, and again because the update message that created
    it names the chart's update method (it calls that method for every element in a
    message): at 1,000 nodes the second drawing costs half a second. The message that
    creates this chart leaves the method out; every later `update()` (new statuses, new
    classes) names it again.
    """

    def __init__(
        self, options: dict[str, Any], clicked: Callable[[events.GenericEventArguments], Any]
    ) -> None:
        super().__init__(options)
        self.classes("dag-chart").style(CHART_SIZE)
        self.on("chart:click", clicked, ["name", "dataType"])
        self._update_method = None

    def update(self) -> None:
        """Send the chart, redrawn from its options on the client."""
        self._update_method = "update_chart"
        super().update()


def set_statuses(chart: ui.echart, statuses: dict[str, str]) -> None:
    """Recolour the nodes whose status changed (a live update), in one message."""
    data = chart.options["series"][0]["data"]
    changed = False
    for item in data:
        status = statuses.get(item["name"])
        if status is not None and item["category"] != _category(status):
            item["category"] = _category(status)
            changed = True
    if changed:
        chart.update()


def _category(status: str) -> int:
    return STATUSES.index(status) if status in STATUS_COLORS else 0


def is_large(node_count: int) -> bool:
    """Whether a graph of ``node_count`` nodes is worth grouping before it is drawn."""
    return node_count > LARGE_GRAPH


def group_nodes(
    nodes: Sequence[Node], edges: Sequence[Edge], group_of: Mapping[str, str]
) -> tuple[list[Node], list[Edge]]:
    """One node per group of ``group_of`` (node id -> group id, the group id also its label),
    labelled with its member count and showing its most urgent member status; one edge per
    pair of groups that any member edge joins (none within a group)."""
    members: dict[str, list[Node]] = defaultdict(list)
    for node in nodes:
        members[group_of[node.id]].append(node)
    statuses = group_statuses({node.id: node.status for node in nodes}, group_of)
    grouped = [
        Node(
            group,
            f"{group} ({len(inside)})",
            statuses[group],
            f"{group}\n{len(inside)} tasks: {count_text(node.status for node in inside)}",
        )
        for group, inside in members.items()
    ]
    joined = {
        (group_of[upstream], group_of[downstream])
        for upstream, downstream in edges
        if group_of[upstream] != group_of[downstream]
    }
    return grouped, sorted(joined)


def group_statuses(statuses: Mapping[str, str], group_of: Mapping[str, str]) -> dict[str, str]:
    """Each group's status: the most urgent (see `URGENCY`) among its members'."""
    found: dict[str, set[str]] = defaultdict(set)
    for node, status in statuses.items():
        found[group_of[node]].add(status)
    return {
        group: next((status for status in URGENCY if status in seen), "PENDING")
        for group, seen in found.items()
    }


def count_text(statuses: Iterable[str]) -> str:
    """'3 completed, 1 failed': how many of each status, in the order of `STATUSES`."""
    counts = Counter(statuses)
    return ", ".join(f"{counts[s]} {s.lower()}" for s in STATUSES if counts[s])
