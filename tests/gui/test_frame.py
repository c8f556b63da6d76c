"""The frame around every page: navigation, the workspace selector, dark mode, the live badge,
and what a tab shows when the registry does not answer."""

import asyncio
import contextlib
import re
from pathlib import Path

import pytest
from nicegui import ui
from nicegui.testing import User

import stardag_gui
from stardag_graphql.app import create_app
from stardag_graphql.migrations import ensure_schema
from stardag_graphql.settings import Settings
from stardag_gui.context import Connection
from tests.conftest import free_port, serving
from tests.gui.conftest import Registry, gui_on, rows_of

ORGANIZATION = "{ organizations { id } }"
CREATE_WORKSPACE = """
mutation($o: ID!) { createWorkspace(organizationId: $o, slug: "second", name: "Second") { id } }
"""


async def test_the_header_links_every_page(user: User) -> None:
    await user.open("/")

    for label in ("Builds", "Tasks", "Settings"):
        await user.should_see(kind=ui.link, content=label)


async def test_choosing_another_workspace_shows_its_builds(user: User, registry: Registry) -> None:
    (organization,) = registry.query(ORGANIZATION)["organizations"]
    registry.query(CREATE_WORKSPACE, o=organization["id"])
    await user.open("/")
    await rows_of(user, 1)

    select = user.find(ui.select).elements.pop()
    assert isinstance(select, ui.select)
    assert isinstance(select.options, dict)
    (second,) = [key for key, label in select.options.items() if label.endswith("/ Second")]
    select.set_value(second)

    await user.should_see("Builds of Local / Second")
    assert await rows_of(user, 0) == []


async def test_the_live_badge_pauses_and_resumes(user: User) -> None:
    await user.open("/")
    await user.should_see(kind=ui.badge, content="live")

    user.find(ui.badge).click()
    await user.should_see(kind=ui.badge, content="paused")

    user.find(ui.badge).click()
    await user.should_see(kind=ui.badge, content="live")


async def test_dark_mode_toggles(user: User) -> None:
    await user.open("/")
    (dark,) = user.find(ui.dark_mode).elements
    assert isinstance(dark, ui.dark_mode)
    assert dark.value is False

    user.find(marker="dark-toggle").click()

    assert dark.value is True


async def test_a_registry_that_does_not_answer_is_named(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    async with gui_on(Connection(url), caplog) as user:
        await user.open("/")

        await user.should_see("The registry did not answer")
        await user.should_see(f"cannot reach the registry at {url}")
        await user.should_see("Try again")


async def test_a_registry_gone_mid_session_is_named_on_the_next_page(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'registry.db'}")
    await ensure_schema(settings)
    with contextlib.ExitStack() as registry:
        url = registry.enter_context(serving(create_app(settings)))
        async with gui_on(Connection(url), caplog) as user:
            await user.open("/tasks")
            await rows_of(user, 0)
            await asyncio.get_running_loop().run_in_executor(None, registry.close)

            user.find(kind=ui.link, content="Builds").click()

            await user.should_see("The registry did not answer")
            await user.should_see(f"cannot reach the registry at {url}")


# Tailwind's utility names: the GUI runs without Tailwind, so each one a page uses must be
# defined in stardag_gui/utilities.css, or it silently does nothing.
UTILITY = re.compile(
    r"(?:min-|max-)?[wh]-\S+|gap-\S+|[pm][xytrbl]?-\d\S*|text-(?:xs|sm|base|lg|\d?xl)"
    r"|font-\S+|break-\S+|whitespace-\S+|no-underline|cursor-\S+|items-\S+|justify-\S+"
)


def test_every_layout_utility_a_page_uses_is_defined() -> None:
    package = Path(stardag_gui.__file__).parent
    css = (package / "utilities.css").read_text()
    defined = {name.replace("\\", "") for name in re.findall(r"^\s*\.(\S+) \{", css, re.M)}
    used = {
        name
        for source in package.rglob("*.py")
        for classes in re.findall(r'\.classes\(\s*"([^"]*)"', source.read_text())
        for name in classes.split()
        if UTILITY.fullmatch(name)
    }

    assert used, "no utility found: the pattern no longer matches how pages set classes"
    assert used - defined == set()
