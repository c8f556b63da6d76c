"""The task explorer and the task page in headless Chromium: the filter bar as a person
uses it, and hostile names, parameters, assets and log lines shown as text, never run."""

import uuid
from datetime import UTC, datetime

import pytest
from nicegui.testing import Screen
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.gui.conftest import Registry

REGISTER = """
mutation($w: ID!, $tasks: [TaskInput!]!) { registerTasks(workspaceId: $w, tasks: $tasks) {
  registered } }
"""
PUT_ASSET = """
mutation($w: ID!, $t: String!, $name: String!, $kind: AssetKind!, $body: String!) {
  putAsset(workspaceId: $w, taskId: $t, name: $name, kind: $kind, body: $body) { name }
}
"""
APPEND_LOGS = """
mutation($w: ID!, $t: String!, $lines: [LogLineInput!]!) {
  appendLogs(workspaceId: $w, taskId: $t, lines: $lines) { appended }
}
"""
IMG = "<img src=x onerror=window.pwned=1>"
SCRIPT = "<script>window.pwned=2</script>"
HOSTILE_MARKDOWN = f"""# Results {IMG}

{SCRIPT}

<iframe src="javascript:window.pwned=3"></iframe>

[a link](javascript:window.pwned=4) and **bold**
"""
INJECTED = (
    'return document.querySelectorAll(\'img[src="x"], iframe, a[href^="javascript"]\').length'
    " + [...document.scripts].filter(s => s.text.trim() === 'window.pwned=2').length"
)
"""How many elements the hostile texts would have injected into the page."""


@pytest.fixture(scope="module")
def hostile(registry: Registry) -> str:
    """The id of a task whose name, parameters, assets and log lines are HTML attacks; it
    needs another such task, so that the lineage graph draws both."""
    needed, task_id = str(uuid.uuid4()), str(uuid.uuid4())
    registry.query(
        REGISTER,
        w=registry.workspace_id,
        tasks=[
            {"taskId": needed, "name": SCRIPT, "namespace": IMG},
            {
                "taskId": task_id,
                "name": IMG,
                "namespace": SCRIPT,
                "parameters": {"note": IMG, "nested": {"html": SCRIPT}},
                "dependencies": [needed],
            },
        ],
    )
    for name, kind, body in (
        (IMG, "MARKDOWN", HOSTILE_MARKDOWN),
        ("metrics", "JSON", f'{{"note": "{IMG}"}}'),
    ):
        registry.query(
            PUT_ASSET, w=registry.workspace_id, t=task_id, name=name, kind=kind, body=body
        )
    now = datetime.now(UTC).isoformat()
    registry.query(
        APPEND_LOGS,
        w=registry.workspace_id,
        t=task_id,
        lines=[
            {"seq": 0, "text": f"ERROR tests: {IMG}", "loggedAt": now, "stream": "log"},
            {"seq": 1, "text": SCRIPT, "loggedAt": now},
        ],
    )
    return task_id


def test_the_filter_bar_narrows_the_rows(gui_screen: Screen, registry: Registry) -> None:
    gui_screen.open("/tasks?namespace=stardag.demo")
    gui_screen.should_contain("Tasks of")
    gui_screen.wait_for(lambda: len(table_rows(gui_screen)) == 7)

    pick(gui_screen, "filter-key", "sens", "sensor (parameter)")
    pick(gui_screen, "filter-operator", "", "=")
    pick(gui_screen, "filter-value", "nor", "north")

    gui_screen.should_contain("sensor = north")
    gui_screen.wait_for(lambda: len(table_rows(gui_screen)) == 1)
    assert "measure" in table_rows(gui_screen)[0]
    assert gui_screen.selenium.current_url.endswith(
        "/tasks?namespace=stardag.demo&param.sensor=north"
    )


def test_hostile_texts_in_the_explorer_are_shown_as_text(gui_screen: Screen, hostile: str) -> None:
    gui_screen.open("/tasks?namespace=%3Cscript%3Ewindow.pwned%3D2%3C%2Fscript%3E&columns=note")

    gui_screen.wait_for(lambda: len(table_rows(gui_screen)) == 1)
    (row,) = table_rows(gui_screen)
    assert row.count(IMG) == 2  # the name and the note column
    assert SCRIPT in row
    assert_nothing_injected(gui_screen)


def test_hostile_texts_on_the_task_page_are_shown_as_text(gui_screen: Screen, hostile: str) -> None:
    gui_screen.open(f"/tasks/{hostile}")

    gui_screen.should_contain(f"{SCRIPT}.{IMG}")  # the title
    gui_screen.should_contain(f"Results {IMG}")  # the markdown's heading, as text
    gui_screen.should_contain("<iframe src=")  # raw HTML in the markdown, as text
    gui_screen.should_contain(f"ERROR tests: {IMG}")  # the log
    gui_screen.should_contain(f"{IMG}.{SCRIPT}")  # the link to the task it needs
    gui_screen.find_by_class("asset-markdown").find_element(By.TAG_NAME, "strong")
    assert_nothing_injected(gui_screen)


def assert_nothing_injected(screen: Screen) -> None:
    """No element came from the hostile texts and none of their scripts ran."""
    screen.wait(0.5)  # time for an injected image to fail and its handler to run
    assert screen.selenium.execute_script(INJECTED) == 0
    assert screen.selenium.execute_script("return window.pwned") is None


def pick(screen: Screen, selector: str, typed: str, option: str) -> None:
    """Open the selector with class ``selector``, type ``typed`` and click ``option``."""
    field = screen.find_by_class(selector)
    field.click()
    if typed:
        field.find_element(By.TAG_NAME, "input").send_keys(typed)
    # Found and clicked in one go: the menu may redraw its options meanwhile (suggestions
    # follow what was typed), and `wait_for` retries a condition whose element went stale.
    # An option found first and clicked afterwards went stale once in CI.
    screen.wait_for(lambda: click_option(screen, option))
    screen.selenium.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)


def click_option(screen: Screen, label: str) -> bool:
    """Click the menu option labelled ``label``; False while the open menu does not show it."""
    for item in screen.find_all_by_class("q-item"):
        if item.text.strip() == label:
            item.click()
            return True
    return False


def table_rows(screen: Screen) -> list[str]:
    """The text of each row of the tasks table."""
    return [
        row.text
        for row in screen.selenium.find_elements(By.CSS_SELECTOR, ".tasks-table tbody tr")
        if "q-tr--no-hover" not in (row.get_attribute("class") or "")
    ]
