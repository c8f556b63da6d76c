"""The GUI in headless Chromium: how long a person waits for a page, beside a floor.

    uv run --locked --all-extras python bench/gui.py               # 5 runs each
    uv run --locked --all-extras python bench/gui.py --runs 3 --only build-view

Each workload puts its data into a fresh registry through the public GraphQL API, serves the
GUI with `stardag up` (registry and GUI in one process, as a user runs it) and opens a page
in a fresh headless Chromium per run, timing from the navigation to the moment the page
shows everything the workload asks for. The floor draws the same ECharts options from a
static HTML page on loopback, with the ECharts bundle NiceGUI ships and no framework, no
websocket and no registry: what remains is the browser's own parse-and-draw time, so the
ratio is what the framework and the registry queries add on top of it.

A workload is a function from the number of runs to table rows, listed in `WORKLOADS`.
"""

import argparse
import contextlib
import functools
import http.server
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nicegui
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from stardag_gui.graph import Node, chart_options

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--window-size=1280,800",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
ECHARTS_BUNDLE = Path(nicegui.__file__).parent / "elements" / "echart" / "dist"
TIMEOUT = 60.0
TASKS = 1_000
LAYERS = 20


@dataclass(frozen=True)
class Row:
    """One line of the results table."""

    workload: str
    contender: str
    seconds: list[float]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per contender (median)")
    parser.add_argument("--only", help="comma-separated workloads: " + ", ".join(WORKLOADS))
    arguments = parser.parse_args()
    chosen = arguments.only.split(",") if arguments.only else list(WORKLOADS)
    rows = [row for name in chosen for row in WORKLOADS[name](arguments.runs)]
    print_table(rows)


def build_view(runs: int) -> list[Row]:
    """The build view of a 1,000-task build, 20 layers, every task run once: until the DAG
    shows all its nodes and the header its counts (the first full render), opened by its URL
    in a cold browser, and reached from the builds list by a click on its row (the page
    already loaded, as a person gets there); and until the timeline has a bar for every run
    (its events arrive through the subscription). The builds list, opened cold, shows what
    the frame alone costs (NiceGUI's scripts, its websocket, one small query)."""
    with tempfile.TemporaryDirectory() as directory, stardag_up(Path(directory)) as url:
        workspace = graphql(url, "{ organizations { workspaces { id } } }")
        workspace_id = workspace["organizations"][0]["workspaces"][0]["id"]
        tasks = layered_tasks(TASKS, LAYERS)
        build_id = record_build(url, workspace_id, tasks)
        drawn = (
            "document.querySelector('.count-completed')?.textContent === 'completed "
            f"{TASKS}' && getElement(document.querySelector('.dag-chart'))?.chart?.getModel()"
            f"?.getSeriesByIndex(0)?.getData()?.count() === {TASKS}"
        )
        timeline = (
            "getElement(document.querySelector('.build-timeline'))?.chart?.getOption()"
            f"?.series?.[1]?.data?.length === {TASKS}"
        )
        opened = [time_page(f"{url}/builds/{build_id}", drawn, timeline) for _ in range(runs)]
        clicked = [
            time_page(f"{url}/", drawn, click=".builds-table tbody tr")[0] for _ in range(runs)
        ]
        listed = "document.querySelector('.builds-table tbody tr') !== null"
        builds_list = [time_page(f"{url}/", listed)[0] for _ in range(runs)]
        nodes = [Node(t["taskId"], t["name"], "COMPLETED", t["name"]) for t in tasks]
        edges = [(up, t["taskId"]) for t in tasks for up in t["dependencies"]]
        with static_chart(chart_options(nodes, edges)) as static_page:
            floor_drawn = (
                f"window.chart?.getModel()?.getSeriesByIndex(0)?.getData()?.count() === {TASKS}"
            )
            floor = [time_page(static_page, floor_drawn)[0] for _ in range(runs)]
    name = f"build view, {TASKS:,} tasks"
    return [
        Row(name, "static HTML page, same ECharts graph, cold browser (floor)", floor),
        Row(
            name,
            "stardag GUI, URL opened in a cold browser: DAG and counts",
            [o[0] for o in opened],
        ),
        Row(name, "stardag GUI, a click in the builds list: DAG and counts", clicked),
        Row(name, "stardag GUI, URL opened: timeline complete too", [o[1] for o in opened]),
        Row(name, "stardag GUI, the builds list opened in a cold browser", builds_list),
    ]


WORKLOADS: dict[str, Callable[[int], list[Row]]] = {"build-view": build_view}


def layered_tasks(count: int, layers: int) -> list[dict[str, Any]]:
    """``count`` tasks in ``layers`` layers, each needing two tasks of the layer below (a
    fixed seed, so every run draws the same graph)."""
    width = count // layers
    rng = random.Random(0)
    grid: list[list[dict[str, Any]]] = []
    for layer in range(layers):
        below = grid[-1] if grid else []
        grid.append(
            [
                {
                    "taskId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    "name": f"step_{layer}",
                    "namespace": "bench",
                    "parameters": {"layer": layer, "index": index},
                    "dependencies": [t["taskId"] for t in rng.sample(below, 2)] if below else [],
                }
                for index in range(width)
            ]
        )
    return [task for layer in grid for task in layer]


def record_build(url: str, workspace_id: str, tasks: list[dict[str, Any]]) -> str:
    """Report a finished build of ``tasks`` (each running for 10 ms in order) through the
    API, as the SDK would; the build's id."""
    build_id = graphql(
        url,
        "mutation($w: ID!) { startBuild(workspaceId: $w) { id } }",
        w=workspace_id,
    )["startBuild"]["id"]
    graphql(
        url,
        "mutation($w: ID!, $t: [TaskInput!]!, $b: ID) "
        "{ registerTasks(workspaceId: $w, tasks: $t, buildId: $b) { registered } }",
        w=workspace_id,
        t=tasks,
        b=build_id,
    )
    start = datetime.now(UTC)
    events = [
        {
            "eventId": uuid.uuid4().hex,
            "kind": kind,
            "occurredAt": (start + timedelta(milliseconds=10 * i + offset)).isoformat(),
            "taskId": task["taskId"],
            "buildId": build_id,
        }
        for i, task in enumerate(tasks)
        for kind, offset in (("TASK_RUNNING", 0), ("TASK_COMPLETED", 9))
    ]
    for first in range(0, len(events), 500):
        graphql(
            url,
            "mutation($w: ID!, $e: [EventInput!]!) "
            "{ recordEvents(workspaceId: $w, events: $e) { recorded } }",
            w=workspace_id,
            e=events[first : first + 500],
        )
    graphql(
        url, "mutation($b: ID!) { finishBuild(buildId: $b, status: COMPLETED) { id } }", b=build_id
    )
    return str(build_id)


def time_page(page: str, *conditions: str, click: str | None = None) -> list[float]:
    """Seconds until each JavaScript condition holds, in order (polled every 10 ms), in a
    fresh browser: from navigating to ``page``, or, with ``click`` (a CSS selector), from
    clicking that element of the loaded ``page``."""
    driver = chromium()
    try:
        if click is not None:
            driver.get(page)
            wait_until(driver, f"document.querySelector({json.dumps(click)}) !== null")
        started = time.perf_counter()
        if click is None:
            driver.get(page)
        else:
            driver.execute_script(f"document.querySelector({json.dumps(click)}).click()")
        reached = []
        for condition in conditions:
            wait_until(driver, condition)
            reached.append(time.perf_counter() - started)
        return reached
    finally:
        driver.quit()


def wait_until(driver: webdriver.Chrome, condition: str) -> None:
    """Poll the JavaScript ``condition`` every 10 ms until it holds."""
    deadline = time.perf_counter() + TIMEOUT
    check = f"try {{ return !!({condition}); }} catch {{ return false; }}"
    while not driver.execute_script(check):
        if time.perf_counter() > deadline:
            raise RuntimeError(f"{driver.current_url}: never reached {condition}")
        time.sleep(0.01)


def chromium() -> webdriver.Chrome:
    """A fresh headless Debian Chromium that reaches loopback only."""
    os.environ.update(SE_OFFLINE="true", SE_AVOID_STATS="true")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))


@contextlib.contextmanager
def stardag_up(directory: Path) -> Iterator[str]:
    """`stardag up` on a free port, a fresh home and SQLite file; yields its URL."""
    port = free_port()
    environment = {
        **os.environ,
        "STARDAG_HOME": str(directory / "home"),
        "STARDAG_DATABASE_URL": f"sqlite+aiosqlite:///{directory / 'registry.db'}",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "stardag_core", "up", "--port", str(port)],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + TIMEOUT
        while True:
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/healthz", timeout=1):
                break
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("stardag up did not start")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait()


@contextlib.contextmanager
def static_chart(options: dict[str, Any]) -> Iterator[str]:
    """A static page on loopback that draws ``options`` with ECharts alone; yields its URL.
    The chart has the size the build view gives it (full width, 70% of the height)."""
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        shutil.copytree(ECHARTS_BUNDLE, root, dirs_exist_ok=True)
        (root / "graph.html").write_text(
            "<!doctype html><html><body style='margin:0'>"
            "<div id='chart' style='width:100vw;height:70vh'></div>"
            "<script type='module'>"
            "import { echarts } from './index.js';"
            "window.chart = echarts.init(document.getElementById('chart'));"
            f"window.chart.setOption({json.dumps(options)});"
            "</script></body></html>"
        )
        handler = functools.partial(QuietHandler, directory=str(root))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_port}/graph.html"
        finally:
            server.shutdown()
            thread.join()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files without a log line per request."""

    def log_message(self, format: str, *args: Any) -> None:
        return None


def graphql(url: str, document: str, **variables: Any) -> dict[str, Any]:
    """The data of ``document`` at the registry ``url``; raises on errors."""
    request = urllib.request.Request(
        f"{url}/graphql",
        data=json.dumps({"query": document, "variables": variables}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        answer = json.load(response)
    if answer.get("errors"):
        raise RuntimeError(answer["errors"])
    return dict(answer["data"])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def print_table(rows: list[Row]) -> None:
    """Medians, spreads and ratios to each workload's first row (its floor), as markdown."""
    print("| workload | contender | median | spread | ratio to the floor |")
    print("|---|---|---:|---|---:|")
    floors: dict[str, float] = {}
    for row in rows:
        median = statistics.median(row.seconds)
        floor = floors.setdefault(row.workload, median)
        spread = f"{min(row.seconds):.2f} to {max(row.seconds):.2f} s"
        print(
            f"| {row.workload} | {row.contender} | {median:.3f} s | {spread} "
            f"| {median / floor:.2f} |"
        )


if __name__ == "__main__":
    main()
