"""The task explorer: the workspace's tasks in a table paged on the server, narrowed by a
filter bar (key, then operator, then value, with suggestions from the registry), with the
parameter columns a person picks. Filters, columns and page size live in the URL query
string, so a link reproduces the view::

    /tasks?status=FAILED&name_contains=train&param.seed=0&columns=seed,samples&size=50

A parameter value is read as JSON when it is a JSON scalar (``3``, ``true``, ``null``,
``"3"`` for the text 3) and as text otherwise (``north``).
"""

import asyncio
import json
import math
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode

from nicegui import PageArguments, context, events, ui
from starlette.datastructures import QueryParams

from stardag_core.exceptions import RegistryError
from stardag_gui.context import Gui
from stardag_gui.pages.builds import no_workspace
from stardag_gui.paging import Pager
from stardag_gui.style import STATUS_COLORS, show_time

TASK_STATUSES = tuple(STATUS_COLORS)
BUILT_IN_KEYS = ("name", "namespace", "status", "build")
PARAMETER = "param."
"""The prefix that marks a filter key (and URL key) as a parameter path."""
OPERATORS = {"name": ("=", "contains")}
"""The operators of a key beyond plain equality."""
PAGE_SIZES = (10, 25, 50, 100)
DEFAULT_PAGE_SIZE = 25
FAMILY_SCAN = 1000
"""How many task families (namespace and name) suggest namespaces."""
NAME_SUGGESTIONS = 50
"""How many task names are suggested at once."""

TASKS = """
query($w: ID!, $filter: TaskFilter, $first: Int!, $after: String) {
  workspace(id: $w) {
    tasks(filter: $filter, first: $first, after: $after) {
      totalCount
      pageInfo { hasNextPage endCursor }
      nodes { taskId namespace name status parameters createdAt }
    }
  }
}
"""
FILTER_KEYS = """
query($w: ID!, $filter: TaskFilter) { workspace(id: $w) { filterKeys(filter: $filter) } }
"""
FILTER_VALUES = """
query($w: ID!, $key: String!, $filter: TaskFilter, $prefix: String!) {
  workspace(id: $w) { filterValues(key: $key, filter: $filter, prefix: $prefix) }
}
"""
FAMILIES = """
query($w: ID!, $namespace: String, $prefix: String!, $first: Int!) {
  workspace(id: $w) {
    taskFamilies(namespace: $namespace, prefix: $prefix, first: $first) { namespace name }
  }
}
"""
RECENT_BUILDS = """
query($w: ID!) { workspace(id: $w) { builds(first: 50) { nodes { id name startedAt } } } }
"""
BASE_COLUMNS = [
    {"name": "name", "label": "Task", "field": "name", "align": "left"},
    {"name": "namespace", "label": "Namespace", "field": "namespace", "align": "left"},
    {"name": "status", "label": "Status", "field": "status", "align": "left"},
    {"name": "task_id", "label": "Task id", "field": "short_id", "align": "left"},
    {"name": "created", "label": "Registered", "field": "created", "align": "left"},
]


class BadView(ValueError):
    """A part of the URL that cannot be a filter; the message says why and what fits."""


@dataclass(frozen=True)
class Condition:
    """One filter: ``key`` (a built-in key or ``param.<path>``), an operator and a value."""

    key: str
    operator: str
    value: str

    @property
    def url_key(self) -> str:
        """The name of this condition in the URL query string."""
        return f"{self.key}_contains" if self.operator == "contains" else self.key

    @property
    def label(self) -> str:
        """How its chip reads: ``status = FAILED``, ``seed = 0``."""
        return f"{self.key.removeprefix(PARAMETER)} {self.operator} {self.value}"

    @property
    def accumulates(self) -> bool:
        """Whether another condition on the same key widens the match (any of the values)
        instead of replacing this one."""
        return self.operator == "=" and self.key in ("name", "status")


@dataclass(frozen=True)
class View:
    """What the explorer shows: the conditions, the chosen parameter columns, the page size."""

    conditions: tuple[Condition, ...] = ()
    columns: tuple[str, ...] = ()
    size: int = DEFAULT_PAGE_SIZE

    def adding(self, condition: Condition) -> "View":
        """This view with ``condition`` too (replacing one it contradicts)."""
        if condition in self.conditions:
            return self
        kept = tuple(
            c
            for c in self.conditions
            if condition.accumulates or (c.key, c.operator) != (condition.key, condition.operator)
        )
        return replace(self, conditions=(*kept, condition))

    def removing(self, condition: Condition) -> "View":
        """This view without ``condition``."""
        return replace(self, conditions=tuple(c for c in self.conditions if c != condition))

    def without_key(self, key: str) -> "View":
        """This view without the conditions on ``key`` (what suggests values for it)."""
        return replace(self, conditions=tuple(c for c in self.conditions if c.key != key))

    def task_filter(self) -> dict[str, Any] | None:
        """The GraphQL ``TaskFilter`` of the conditions (None when there are none)."""
        task_filter: dict[str, Any] = {}
        for c in self.conditions:
            if c.key == "name" and c.operator == "contains":
                task_filter["search"] = c.value
            elif c.key == "name":
                task_filter.setdefault("names", []).append(c.value)
            elif c.key == "status":
                task_filter.setdefault("statuses", []).append(c.value)
            elif c.key == "namespace":
                task_filter["namespace"] = c.value
            elif c.key == "build":
                task_filter["buildId"] = c.value
            else:
                task_filter.setdefault("parameters", []).append(
                    {"path": c.key.removeprefix(PARAMETER), "equals": scalar(c.value)}
                )
        return task_filter or None

    def query_string(self) -> str:
        """The view as a URL query string (empty for the default view)."""
        pairs = [(c.url_key, c.value) for c in self.conditions]
        if self.columns:
            pairs.append(("columns", ",".join(self.columns)))
        if self.size != DEFAULT_PAGE_SIZE:
            pairs.append(("size", str(self.size)))
        return urlencode(pairs)


def parse_view(query: QueryParams) -> tuple[View, list[str]]:
    """The view a URL's query string asks for, and a message for each part that cannot be
    one (that part is left out)."""
    view = View()
    problems: list[str] = []
    for url_key, value in query.multi_items():
        try:
            view = _read_part(view, url_key, value)
        except BadView as error:
            problems.append(str(error))
    return view, problems


def _read_part(view: View, url_key: str, value: str) -> View:
    if url_key == "columns":
        return replace(view, columns=tuple(c for c in value.split(",") if c))
    if url_key == "size":
        if value not in {str(size) for size in PAGE_SIZES}:
            raise BadView(f"page size {value!r} is not one of {', '.join(map(str, PAGE_SIZES))}")
        return replace(view, size=int(value))
    key, operator = url_key, "="
    if url_key.endswith("_contains"):
        key, operator = url_key.removesuffix("_contains"), "contains"
    return view.adding(condition(key, operator, value))


def condition(key: str, operator: str, value: str) -> Condition:
    """A checked condition; ``BadView`` says what is wrong with it."""
    if key not in BUILT_IN_KEYS and not key.startswith(PARAMETER):
        raise BadView(
            f"unknown filter {key!r}: use {', '.join(BUILT_IN_KEYS)} or param.<parameter path>"
        )
    if operator not in OPERATORS.get(key, ("=",)):
        raise BadView(f"the filter {key!r} has no operator {operator!r}")
    if key == "status" and value not in TASK_STATUSES:
        raise BadView(f"unknown status {value!r}: one of {', '.join(TASK_STATUSES)}")
    if key.startswith(PARAMETER):
        path = key.removeprefix(PARAMETER)
        if not path or any(not part for part in path.split(".")):
            raise BadView(f"{path!r} is not a parameter path such as 'seed' or 'model.depth'")
        scalar(value)
    return Condition(key, operator, value)


def scalar(text: str) -> str | int | float | bool | None:
    """A parameter value typed as text: a JSON scalar when it reads as one, else the text."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    if isinstance(value, dict | list):
        raise BadView(
            f"parameter value {text!r} is not a string, number, true, false or null "
            "(filters compare single values)"
        )
    if isinstance(value, float) and not math.isfinite(value):
        return text
    return value  # type: ignore[no-any-return]


@dataclass
class TaskExplorer:
    """The explorer's state: the view, the rows shown and where they stand among all."""

    gui: Gui
    view: View
    total: int = 0
    page_info: dict[str, Any] = field(default_factory=dict)
    nodes: list[dict[str, Any]] = field(default_factory=list)

    async def load(self, after: str | None) -> None:
        """Ask the registry for the page after cursor ``after`` (None: the first)."""
        data = await self.gui.query(
            TASKS,
            w=self.gui.workspace_id,
            filter=self.view.task_filter(),
            first=self.view.size,
            after=after,
        )
        tasks = data["workspace"]["tasks"]
        self.total = tasks["totalCount"]
        self.page_info = tasks["pageInfo"]
        self.nodes = tasks["nodes"]

    def rows(self) -> list[dict[str, Any]]:
        """The page's tasks as table rows, with the chosen parameter columns."""
        return [row(task, self.view.columns) for task in self.nodes]

    def columns(self) -> list[dict[str, Any]]:
        """The table's columns: the task's own, then the chosen parameters."""
        return BASE_COLUMNS + [
            {"name": PARAMETER + key, "label": key, "field": PARAMETER + key, "align": "left"}
            for key in self.view.columns
        ]

    async def parameter_keys(self) -> list[str]:
        """Parameter names of the workspace's newest tasks (none when the registry does not
        answer: the table says why). Not narrowed by the view's filter, which would cost a
        scan of the matching tasks on every page load."""
        try:
            data = await self.gui.query(FILTER_KEYS, w=self.gui.workspace_id, filter=None)
        except RegistryError:
            return []
        return list(data["workspace"]["filterKeys"])

    async def suggestions(self, key: str, prefix: str) -> dict[str, str]:
        """Values of ``key`` that start with ``prefix`` among the tasks the other filters let
        through, value to label."""
        others = self.view.without_key(key).task_filter()
        if key == "status":
            return {s: s for s in TASK_STATUSES if s.startswith(prefix.upper())}
        if key == "build":
            data = await self.gui.query(RECENT_BUILDS, w=self.gui.workspace_id)
            builds = data["workspace"]["builds"]["nodes"]
            return {b["id"]: f"{b['name']} · {show_time(b['startedAt'])}" for b in builds}
        if key in ("name", "namespace"):
            # Every family of the workspace (names in the chosen namespace, if any), however
            # old: the families, not the tasks, are what the registry walks.
            naming = key == "name"
            data = await self.gui.query(
                FAMILIES,
                w=self.gui.workspace_id,
                namespace=(others or {}).get("namespace") if naming else None,
                prefix=prefix if naming else "",
                first=NAME_SUGGESTIONS if naming else FAMILY_SCAN,
            )
            found = sorted({family[key] for family in data["workspace"]["taskFamilies"]})
            # The empty namespace is left out: an empty value adds no condition.
            return {value: value for value in found if value and value.startswith(prefix)}
        data = await self.gui.query(
            FILTER_VALUES,
            w=self.gui.workspace_id,
            key=key.removeprefix(PARAMETER),
            filter=others,
            prefix=prefix,
        )
        return {value: value for value in data["workspace"]["filterValues"]}


def row(task: dict[str, Any], columns: Iterable[str]) -> dict[str, Any]:
    """A task as a table row; a parameter column shows the value at its dotted path."""
    shown = {
        "id": task["taskId"],
        "name": task["name"],
        "namespace": task["namespace"] or "—",
        "status": task["status"],
        "short_id": task["taskId"][:8],
        "created": show_time(task["createdAt"]),
    }
    for key in columns:
        shown[PARAMETER + key] = show_value(at_path(task["parameters"], key))
    return shown


def at_path(parameters: Any, path: str) -> Any:
    """The value at dotted ``path`` of ``parameters`` (None when it has none)."""
    value = parameters
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def show_value(value: Any) -> str:
    """A parameter value in a cell: text as it is, anything else as compact JSON."""
    if value is None:
        return "—"
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


async def tasks_page(gui: Gui, arguments: PageArguments) -> None:
    """The task explorer of the chosen workspace, showing the view the URL asks for."""
    if gui.workspace is None:
        no_workspace()
        return
    view, problems = parse_view(arguments.query_parameters)
    state = TaskExplorer(gui, view)

    ui.label(f"Tasks of {gui.workspace.label}").classes("text-h5")
    for problem in problems:
        ui.label(f"Left out of the URL's filters: {problem}").classes("text-negative view-problem")
    filter_bar = FilterBar(state, on_change=lambda: apply())
    with ui.row().classes("items-center gap-2"):
        chips = ui.row().classes("gap-1 filter-chips")
        ui.space()
        choose_columns = (
            ui.select(
                list(view.columns),
                value=list(view.columns),
                label="Parameter columns",
                multiple=True,
                with_input=True,
                new_value_mode="add-unique",
            )
            .classes("min-w-64 column-choice")
            .mark("column-choice")
        )
        page_size = (
            ui.select(list(PAGE_SIZES), value=view.size, label="Rows per page")
            .classes("w-32 page-size")
            .mark("page-size")
        )
    refused = ui.label().classes("text-negative registry-refused")
    table = ui.table(columns=state.columns(), rows=[], row_key="id").classes("w-full tasks-table")
    table.add_slot(
        "body-cell-status",
        '<q-td :props="props"><q-badge :label="props.value" '
        f':style="{{background: ({STATUS_COLORS})[props.value]}}" /></q-td>',
    )
    table.on("rowClick", lambda event: ui.navigate.to(f"/tasks/{event.args[1]['id']}"))
    pager = Pager(lambda: show())

    def show_chips() -> None:
        chips.clear()
        with chips:
            for c in state.view.conditions:
                ui.chip(
                    c.label,
                    removable=True,
                    color="primary",
                    text_color="white",
                    on_value_change=lambda _, c=c: remove(c),
                ).classes("filter-chip").mark("filter-chip")

    async def show() -> None:
        try:
            await state.load(pager.cursor)
        except RegistryError as error:
            refused.set_text(f"The registry refused this view: {error}")
            table.rows = []
            pager.stop()
            return
        refused.set_text("")
        table.columns = state.columns()
        table.rows = state.rows()
        first = (pager.number - 1) * state.view.size
        last = first + len(state.nodes)
        pager.shown(state.page_info, f"{first + 1 if last else 0}-{last} of {state.total}")

    async def apply() -> None:
        remember(state.view)
        pager.restart()
        show_chips()
        await show()

    async def remove(c: Condition) -> None:
        state.view = state.view.removing(c)
        await apply()

    def columns_chosen(event: events.ValueChangeEventArguments[Any]) -> None:
        state.view = replace(state.view, columns=tuple(event.value or ()))
        remember(state.view)
        table.columns = state.columns()
        table.rows = state.rows()

    async def size_chosen(event: events.ValueChangeEventArguments[Any]) -> None:
        state.view = replace(state.view, size=int(event.value))
        await apply()

    choose_columns.on_value_change(columns_chosen)
    page_size.on_value_change(size_chosen)
    show_chips()
    parameters, _ = await asyncio.gather(state.parameter_keys(), show())
    filter_bar.offer(parameters)
    choose_columns.set_options(sorted(set(parameters) | set(state.view.columns)))


class FilterBar:
    """Key, then operator, then value: choosing a value adds the condition. Keys and values
    are suggested by the registry as the person types."""

    def __init__(self, state: TaskExplorer, on_change: Callable[[], Awaitable[None]]) -> None:
        """The three selectors (keys: the built-in ones until ``offer``) and a message line."""
        self.state = state
        self.on_change = on_change
        with ui.row().classes("items-start gap-2 filter-bar"):
            self.key = (
                ui.select(
                    {key: key for key in BUILT_IN_KEYS},
                    label="Filter on",
                    with_input=True,
                    new_value_mode="add-unique",
                    on_change=self.key_chosen,
                )
                .classes("w-56 filter-key")
                .mark("filter-key")
            )
            self.operator = (
                ui.select(["="], value="=", label="Operator")
                .classes("w-28 filter-operator")
                .mark("filter-operator")
            )
            self.value = (
                ui.select(
                    {},
                    label="Value",
                    with_input=True,
                    new_value_mode="add-unique",
                    on_change=self.value_chosen,
                )
                .classes("w-64 filter-value")
                .mark("filter-value")
            )
            self.value.on("input-value", self.typed)
            self.value.set_enabled(False)
        self.problem = ui.label().classes("text-negative filter-problem")

    def offer(self, parameters: list[str]) -> None:
        """Offer ``parameters`` as keys too, after the built-in ones."""
        self.key.set_options(
            {key: key for key in BUILT_IN_KEYS}
            | {PARAMETER + key: f"{key} (parameter)" for key in parameters}
        )

    def chosen_key(self) -> str | None:
        """The chosen key; a typed name that is no built-in key is a parameter path."""
        key = str(self.key.value or "")
        if not key:
            return None
        return key if key in BUILT_IN_KEYS or key.startswith(PARAMETER) else PARAMETER + key

    async def key_chosen(self) -> None:
        """Offer the operators and the first values of the chosen key."""
        key = self.chosen_key()
        operators = list(OPERATORS.get(key or "", ("=",)))
        self.operator.set_options(operators, value=operators[0])
        self.value.set_value(None)
        self.value.set_enabled(key is not None)
        if key is not None:
            await self.suggest(key, "")

    async def typed(self, event: events.GenericEventArguments) -> None:
        """Suggest values that start with what the person typed."""
        key = self.chosen_key()
        if key is not None:
            await self.suggest(key, str(event.args or ""))

    async def suggest(self, key: str, prefix: str) -> None:
        """Put the registry's suggestions for ``key`` into the value selector."""
        try:
            options = await self.state.suggestions(key, prefix)
        except RegistryError as error:
            self.problem.set_text(f"No suggestions: {error}")
            return
        self.problem.set_text("")
        self.value.set_options(options)

    async def value_chosen(self) -> None:
        """Add the condition (key, operator, value), or say why it cannot be one."""
        key, value = self.chosen_key(), self.value.value
        if key is None or value is None or value == "":
            return
        try:
            added = condition(key, str(self.operator.value), str(value))
        except BadView as error:
            self.problem.set_text(str(error))
            return
        self.problem.set_text("")
        self.value.set_value(None)
        self.state.view = self.state.view.adding(added)
        await self.on_change()


def remember(view: View) -> None:
    """Put the view into the address bar (no reload), so a copied link reproduces it."""
    query = view.query_string()
    url = "/tasks" + (f"?{query}" if query else "")
    context.client.sub_pages_router.current_path = url
    ui.navigate.history.replace(url)
