"""The GUI's frame and routes, and running it.

Every browser tab gets a `Gui` (its registry client, the chosen workspace, live or paused)
and the frame: a header with navigation, the workspace selector, dark mode and the live
badge, around client-side routed pages::

    from stardag_gui.app import run
    from stardag_gui.context import Connection

    run(Connection("http://127.0.0.1:8000"), port=8080)
"""

import functools
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from nicegui import app, context, ui
from nicegui.storage import Storage
from starlette.requests import Request
from starlette.responses import Response

from stardag_core.async_client import AsyncRegistryClient
from stardag_core.exceptions import RegistryError
from stardag_gui.context import Account, Connection, Gui, workspace_choices
from stardag_gui.native import WINDOW_SIZE, use_qt
from stardag_gui.pages.build_view import build_view_page
from stardag_gui.pages.builds import builds_page
from stardag_gui.pages.settings import prompts, settings_page
from stardag_gui.pages.task import task_page
from stardag_gui.pages.tasks import tasks_page
from stardag_gui.signin import Person, SignIn

UTILITIES = (Path(__file__).parent / "utilities.css").read_text()
"""The layout utilities the pages use, in place of NiceGUI's in-browser Tailwind."""

ROUTES: dict[str, Callable[..., Awaitable[None]]] = {
    "/": builds_page,
    "/settings": settings_page,
    "/tasks": tasks_page,
    "/tasks/{task_id}": task_page,
    "/builds/{build_id}": build_view_page,
}
NAVIGATION = {"Builds": "/", "Tasks": "/tasks", "Settings": "/settings"}


def create_root(connection: Connection) -> Callable[[Request], Awaitable[Response | None]]:
    """The root page of the GUI on ``connection``: the frame around the routed pages (with
    sign-in, only for a signed-in person)."""
    signin = SignIn(connection.url, connection.public_url) if connection.sign_in else None

    async def root(request: Request) -> Response | None:
        ui.add_css(UTILITIES)
        account: Account | None = None
        credential = connection.credential
        if signin is not None:
            person = await signin.gate(request)
            if not isinstance(person, Person):
                return person
            credential = account = person
        client = AsyncRegistryClient(connection.url, credential)
        context.client.on_delete(client.aclose)
        ui.page_title("stardag")
        try:
            workspaces = await workspace_choices(client)
        except RegistryError as error:
            unreachable(str(error))
            return None
        stored = app.storage.user.get("workspace")
        known = {w.id for w in workspaces}
        chosen = next(
            (w for w in (stored, connection.workspace_id) if w in known),
            workspaces[0].id if workspaces else "",
        )
        gui = Gui(client, workspaces, chosen, account)
        pages = frame(gui)
        with ui.column().classes("w-full p-4 gap-4"):
            routes = {path: guarded(page) for path, page in ROUTES.items()}
            pages.append(ui.sub_pages(routes, data={"gui": gui}).classes("w-full"))
        await prompts(gui)
        return None

    return root


def frame(gui: Gui) -> list[Any]:
    """The header of every page; returns a list the routed pages are appended to, so that a
    change of workspace can refresh them."""
    pages: list[Any] = []
    dark = ui.dark_mode(app.storage.user.get("dark", False))

    def toggle_dark() -> None:
        dark.toggle()
        app.storage.user["dark"] = dark.value

    def toggle_live(badge: ui.badge) -> None:
        gui.live = not gui.live
        badge.props(f"color={'positive' if gui.live else 'grey'}")

    def choose(workspace_id: str) -> None:
        gui.workspace_id = workspace_id
        app.storage.user["workspace"] = workspace_id
        for sub_pages in pages:
            sub_pages.refresh()

    with ui.header().classes("items-center gap-4 px-4 py-2"):
        ui.link("stardag", "/").classes("text-lg font-bold text-white no-underline")
        for label, path in NAVIGATION.items():
            ui.link(label, path).classes("text-white no-underline nav-link")
        ui.space()
        ui.select(
            {w.id: w.label for w in gui.workspaces},
            value=gui.workspace_id or None,
            on_change=lambda event: choose(event.value),
        ).props("dense dark options-dense borderless").classes("workspace-select min-w-48").tooltip(
            "Workspace"
        )
        badge = ui.badge(color="positive").classes("cursor-pointer live-badge")
        badge.bind_text_from(gui, "live", lambda live: "live" if live else "paused")
        badge.on("click", lambda: toggle_live(badge))
        badge.tooltip("Follow changes as they happen (click to pause or resume)")
        ui.button(icon="dark_mode", on_click=toggle_dark).props("flat round color=white").mark(
            "dark-toggle"
        ).tooltip("Dark mode")
    return pages


def guarded(page: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """``page``, showing what the registry said when it refuses or goes away while the page
    is built, instead of failing in the background."""

    @functools.wraps(page)
    async def show(*args: Any, **kwargs: Any) -> None:
        try:
            await page(*args, **kwargs)
        except RegistryError as error:
            unreachable(str(error))

    return show


def unreachable(message: str) -> None:
    """What a tab shows when the registry cannot be asked for the caller's workspaces."""
    with ui.card().classes("m-8 max-w-2xl"):
        ui.label("The registry did not answer").classes("text-h6 text-negative")
        ui.label(message)
        ui.button("Try again", on_click=ui.navigate.reload)


def run(
    connection: Connection,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    native: bool = False,
    storage: Path,
    show: bool = False,
) -> None:
    """Serve the GUI on ``connection`` until interrupted (or until the native window closes);
    per-person settings (workspace, dark mode) are kept under ``storage``."""
    storage.mkdir(parents=True, exist_ok=True)
    Storage.path = storage / "sessions"
    # With sign-in, people's tokens are kept there: for this user's eyes only.
    Storage.path.mkdir(mode=0o700, exist_ok=True)
    Storage.path.chmod(0o700)
    if native:
        use_qt()
    ui.run(
        create_root(connection),
        host=host,
        port=port,
        title="stardag",
        native=native,
        window_size=WINDOW_SIZE if native else None,
        reload=False,
        show=show,
        storage_secret=storage_secret(storage),
        # Behind TLS the session cookie (which names a person's sign-in) travels only on https.
        session_middleware_kwargs={
            "https_only": (connection.public_url or "").startswith("https://")
        },
        show_welcome_message=False,
        favicon="✳️",
        tailwind=False,
    )


def storage_secret(storage: Path) -> str:
    """The secret that signs this installation's GUI session cookies, made once (0600)."""
    path = storage / "secret"
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(32))
    return path.read_text().strip()
