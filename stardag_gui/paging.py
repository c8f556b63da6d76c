"""Paging on the server by keyset cursors: previous and next buttons around a position label,
walking back and forth through the cursors of the pages seen."""

from collections.abc import Awaitable, Callable
from typing import Any

from nicegui import ui


class Pager:
    """The cursors of the pages seen, and the buttons that walk them. A page asks the registry
    for the page after ``cursor``, then hands the answer's ``pageInfo`` to ``shown``."""

    def __init__(self, turn: Callable[[], Awaitable[None]]) -> None:
        """The buttons and the label, in a row; ``turn`` shows the page a click went to."""
        self.turn = turn
        self.cursors: list[str | None] = [None]
        self.end_cursor: str | None = None
        with ui.row().classes("items-center gap-2"):
            self.previous = (
                ui.button(icon="chevron_left", on_click=self.back)
                .props("flat round")
                .mark("previous-page")
            )
            self.position = ui.label().classes("page-position")
            self.following = (
                ui.button(icon="chevron_right", on_click=self.forward)
                .props("flat round")
                .mark("next-page")
            )

    @property
    def cursor(self) -> str | None:
        """Where the page shown starts: after this cursor (None: the first page)."""
        return self.cursors[-1]

    @property
    def number(self) -> int:
        """The page shown, counted from 1."""
        return len(self.cursors)

    def restart(self) -> None:
        """Go back to the first page (the caller shows it), as after a change of filter."""
        self.cursors = [None]

    def shown(self, page_info: dict[str, Any], position: str) -> None:
        """The page was shown: a GraphQL ``pageInfo`` (``hasNextPage``, ``endCursor``) and
        the label that says where it is."""
        self.end_cursor = page_info["endCursor"]
        self.previous.set_enabled(self.number > 1)
        self.following.set_enabled(page_info["hasNextPage"])
        self.position.set_text(position)

    def stop(self) -> None:
        """No page could be shown: neither button leads anywhere."""
        self.previous.set_enabled(False)
        self.following.set_enabled(False)

    async def forward(self) -> None:
        """Show the next page."""
        self.cursors.append(self.end_cursor)
        await self.turn()

    async def back(self) -> None:
        """Show the previous page."""
        self.cursors.pop()
        await self.turn()
