"""The build view in headless Chromium: the graph is drawn, a click on a node opens its
drawer, a running build recolours without a reload, and hostile names stay text."""

import threading
import uuid
from pathlib import Path
from typing import Any

from nicegui.testing import Screen
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

import stardag_core as sd
from stardag_gui.graph import STATUSES
from tests.gui.conftest import Registry, record_build, report_build

CHART = "getElement(document.querySelector('.dag-chart')).chart"
GATE = threading.Event()
"""Holds `gated` tasks in their run until a test opens it."""
HOSTILE_NAME = "<img src=x onerror=document.body.dataset.pwned=1>"
HOSTILE_SCRIPT = "<script>document.body.dataset.pwned=2</script>"


@sd.task
def gated(label: str) -> str:
    """Waits for `GATE`, so that a test sees its build running."""
    assert GATE.wait(60)
    return label


@sd.task
def shout(text: sd.Depends[str]) -> str:
    """Needs a `gated` task."""
    return text.upper()


def wait_for_chart(screen: Screen, nodes: int) -> None:
    """Until the page's DAG chart shows ``nodes`` nodes."""
    screen.wait_for_js(
        f"{CHART}?.getModel()?.getSeriesByIndex(0)?.getData()?.count() ?? -1", nodes, timeout=10
    )


def click_node(screen: Screen, task_id: str) -> None:
    """A real mouse click on the node of ``task_id``, at the pixel ECharts drew it."""
    chart = screen.find_by_class("dag-chart")
    # Whole in view, so that Selenium's offsets (from the visible part's centre) are exact.
    x, y = screen.selenium.execute_script(
        f"""arguments[1].scrollIntoView();
        const chart = {CHART};
        const node = chart.getOption().series[0].data.find(d => d.name === arguments[0]);
        return chart.convertToPixel({{seriesIndex: 0}}, [node.x, node.y]);""",
        task_id,
        chart,
    )
    size = chart.size
    screen.click_at_position(chart, round(x - size["width"] / 2), round(y - size["height"] / 2))


def status_shown(screen: Screen, task_id: str) -> str:
    """The status the graph colours the node of ``task_id`` with."""
    category: int = screen.selenium.execute_script(
        f"return {CHART}.getOption().series[0].data.find(d => d.name === arguments[0]).category",
        task_id,
    )
    return STATUSES[category]


def test_the_graph_is_drawn_and_a_click_on_a_node_opens_its_drawer(
    gui_screen: Screen, registry: Registry
) -> None:
    data: Any = registry.query(
        "query($w: ID!, $b: ID!) "
        "{ workspace(id: $w) { build(id: $b) { graph { nodes { taskId } } } } }",
        w=registry.workspace_id,
        b=registry.build_id,
    )
    nodes = data["workspace"]["build"]["graph"]["nodes"]

    gui_screen.open(f"/builds/{registry.build_id}")

    wait_for_chart(gui_screen, len(nodes))
    assert gui_screen.find_by_css(".dag-chart canvas").size["width"] > 0
    click_node(gui_screen, registry.root_task_id)
    gui_screen.should_contain("Open the task")
    gui_screen.should_contain(registry.root_task_id)
    gui_screen.shot("build_view_drawer", failed=False)


def test_a_running_build_recolours_without_a_reload(
    gui_screen: Screen, registry: Registry, tmp_path: Path
) -> None:
    first = gated(label=uuid.uuid4().hex)
    root = shout(text=first)
    GATE.clear()
    built: dict[str, Any] = {}

    def build() -> None:
        with sd.use_settings(sd.Settings(target_roots={"default": str(tmp_path / "out")})):
            built["id"] = report_build(registry.url, registry.workspace_id, root, tmp_path / "ob")

    builder = threading.Thread(target=build)
    builder.start()
    try:
        build_id = running_build_with(registry, str(first.id))
        gui_screen.open(f"/builds/{build_id}")
        wait_for_chart(gui_screen, 2)
        gui_screen.wait_for(lambda: status_shown(gui_screen, str(first.id)) == "RUNNING")
        gui_screen.should_contain("running 1")
        gui_screen.shot("build_view_running", failed=False)
    finally:
        GATE.set()
        builder.join(60)

    gui_screen.wait_for(lambda: status_shown(gui_screen, str(root.id)) == "COMPLETED")
    gui_screen.should_contain("completed 2")
    assert status_shown(gui_screen, str(first.id)) == "COMPLETED"
    assert built["id"] == build_id


def running_build_with(registry: Registry, task_id: str) -> str:
    """The newest build, once ``task_id`` runs in it."""
    document = """query($w: ID!, $t: String!) { workspace(id: $w) {
      builds(first: 1) { nodes { id } } task(taskId: $t) { status } } }"""
    for _ in range(300):
        workspace: Any = registry.query(document, w=registry.workspace_id, t=task_id)["workspace"]
        if workspace["task"] and workspace["task"]["status"] == "RUNNING":
            return str(workspace["builds"]["nodes"][0]["id"])
        threading.Event().wait(0.1)
    raise AssertionError(f"task {task_id} never ran")


def test_hostile_names_and_parameters_render_as_text(
    gui_screen: Screen, registry: Registry
) -> None:
    task_id = str(uuid.uuid4())
    hostile = {
        "taskId": task_id,
        "name": HOSTILE_NAME,
        "parameters": {"note": HOSTILE_SCRIPT, "image": HOSTILE_NAME},
        "outputUri": f"memory://{HOSTILE_NAME}",
    }
    build_id = record_build(registry, [hostile], [(task_id, "TASK_RUNNING")])

    gui_screen.open(f"/builds/{build_id}")
    wait_for_chart(gui_screen, 1)
    click_node(gui_screen, task_id)

    gui_screen.should_contain(HOSTILE_NAME)
    gui_screen.should_contain("document.body.dataset.pwned=2")
    gui_screen.selenium.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
    click_node(gui_screen, task_id)  # with the drawer closed: the tooltip shows
    gui_screen.shot("build_view_hostile", failed=False)
    injected = gui_screen.selenium.execute_script(
        "return [document.body.dataset.pwned ?? null,"
        " document.querySelectorAll('img[src=\"x\"]').length,"
        " [...document.scripts].filter(s => s.text.includes('pwned')).length]"
    )
    assert injected == [None, 0, 0]
    try:
        alert = gui_screen.selenium.switch_to.alert.text
    except NoAlertPresentException:
        alert = None
    assert alert is None
