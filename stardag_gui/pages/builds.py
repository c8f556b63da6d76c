"""The builds of the workspace: counters by status (click one to filter), then a page of
builds with their user, commit and duration, newest first, paged on the server."""

from typing import Any

from nicegui import ui

from stardag_gui.context import Gui
from stardag_gui.paging import Pager
from stardag_gui.style import STATUS_COLORS, show_duration, show_time

BUILD_STATUSES = ("RUNNING", "COMPLETED", "FAILED", "CANCELLED")
PAGE_SIZE = 25

COUNTS = (
    "query($w: ID!) { workspace(id: $w) { "
    + " ".join(
        f"{status.lower()}: builds(filter: {{statuses: [{status}]}}, first: 1) {{ totalCount }}"
        for status in BUILD_STATUSES
    )
    + " } }"
)
BUILDS = """
query($w: ID!, $filter: BuildFilter, $first: Int!, $after: String) {
  workspace(id: $w) {
    builds(filter: $filter, first: $first, after: $after) {
      pageInfo { hasNextPage endCursor }
      nodes { id name status commit startedAt finishedAt user { displayName email } }
    }
  }
}
"""
COLUMNS = [
    {"name": "name", "label": "Build", "field": "name", "align": "left"},
    {"name": "status", "label": "Status", "field": "status", "align": "left"},
    {"name": "user", "label": "User", "field": "user", "align": "left"},
    {"name": "commit", "label": "Commit", "field": "commit", "align": "left"},
    {"name": "started", "label": "Started", "field": "started", "align": "left"},
    {"name": "duration", "label": "Duration", "field": "duration", "align": "right"},
]


class BuildList:
    """The builds page's state: the status filter and the ``pageInfo`` of the page shown."""

    def __init__(self, gui: Gui) -> None:
        self.gui = gui
        self.status: str | None = None
        self.page_info: dict[str, Any] = {}

    async def counts(self) -> dict[str, int]:
        data = await self.gui.query(COUNTS, w=self.gui.workspace_id)
        counts = data["workspace"]
        return {status: counts[status.lower()]["totalCount"] for status in BUILD_STATUSES}

    async def page(self, after: str | None) -> list[dict[str, Any]]:
        status_filter = {"statuses": [self.status]} if self.status else None
        data = await self.gui.query(
            BUILDS,
            w=self.gui.workspace_id,
            filter=status_filter,
            first=PAGE_SIZE,
            after=after,
        )
        builds = data["workspace"]["builds"]
        self.page_info = builds["pageInfo"]
        return [row(build) for build in builds["nodes"]]


def row(build: dict[str, Any]) -> dict[str, Any]:
    """A build as a table row."""
    user = build["user"] or {}
    return {
        "id": build["id"],
        "name": build["name"],
        "status": build["status"],
        "user": user.get("displayName") or user.get("email") or "—",
        "commit": (build["commit"] or "—")[:10],
        "started": show_time(build["startedAt"]),
        "duration": show_duration(build["startedAt"], build["finishedAt"]),
    }


async def builds_page(gui: Gui) -> None:
    """The builds list of the chosen workspace."""
    if gui.workspace is None:
        no_workspace()
        return
    state = BuildList(gui)

    @ui.refreshable
    async def counters() -> None:
        counts = await state.counts()
        with ui.row().classes("gap-2"):
            for status in BUILD_STATUSES:
                chosen = state.status == status
                ui.button(
                    f"{status.lower()} {counts[status]}",
                    on_click=lambda status=status: toggle(status),
                ).props(f"{'unelevated' if chosen else 'outline'} no-caps").style(
                    f"color: {'white' if chosen else STATUS_COLORS[status]} !important;"
                    + (f"background: {STATUS_COLORS[status]} !important" if chosen else "")
                ).classes(f"status-counter status-{status.lower()}")

    async def toggle(status: str) -> None:
        state.status = None if state.status == status else status
        pager.restart()
        await counters.refresh()
        await show()

    async def show() -> None:
        table.rows = await state.page(pager.cursor)
        pager.shown(state.page_info, f"page {pager.number}")

    ui.label(f"Builds of {gui.workspace.label}").classes("text-h5")
    await counters()
    table = ui.table(columns=COLUMNS, rows=[], row_key="id").classes("w-full builds-table")
    table.add_slot(
        "body-cell-status",
        '<q-td :props="props"><q-badge :label="props.value" '
        f':style="{{background: ({STATUS_COLORS})[props.value]}}" /></q-td>',
    )
    table.on("rowClick", lambda event: ui.navigate.to(f"/builds/{event.args[1]['id']}"))
    pager = Pager(show)
    await show()


def no_workspace() -> None:
    """What a page shows when the caller reaches no workspace yet."""
    with ui.card().classes("max-w-2xl"):
        ui.label("No workspace yet").classes("text-h6")
        ui.label("Create an organization and a workspace in the settings to start.")
        ui.button("Settings", on_click=lambda: ui.navigate.to("/settings"))
