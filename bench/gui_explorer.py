"""The task explorer over 100,000 tasks in headless Chromium: time to the first full render.

    uv run --locked --all-extras python bench/gui_explorer.py               # 5 runs each
    uv run --locked --all-extras python bench/gui_explorer.py --tasks 10000 --runs 3

The tasks are registered through the public GraphQL API (`registerTasks`, 5,000 a request)
into a fresh `stardag up` (registry and GUI in one process on SQLite, as a user runs it).
Each run opens the page in a fresh headless Chromium and times from the navigation until
the table shows its first page of rows and the count of all matching tasks ("1-25 of
100000"), which is when a person can read it. Two views: the whole workspace, and a
parameter filter with two parameter columns (the view a link to `/tasks?...` reproduces).

Beside them: the floor, the same rows as a plain HTML table in a static page on loopback
(the browser's own parse-and-draw time, no framework, no registry); the registry's answers
to the page's two queries (the page of tasks with its count, the parameter names for the
filter bar) asked over HTTP from Python; and the GUI's frame around an empty sub page (what
NiceGUI and the header cost before the explorer adds anything). The queries and the frame
explain the explorer's time; the ratio to the floor is what it costs over a bare browser.
Target: under 1 s for the whole-workspace view.
"""

import argparse
import contextlib
import functools
import html
import http.server
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from stardag_gui.pages.tasks import FILTER_KEYS, TASKS, View, condition

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
TIMEOUT = 120.0
BATCH = 5_000
PAGE = 25
REGISTER = """
mutation($w: ID!, $tasks: [TaskInput!]!) { registerTasks(workspaceId: $w, tasks: $tasks) {
  registered } }
"""
WORKSPACES = "{ organizations { workspaces { id } } }"
FILTERED = View(conditions=(condition("param.partition", "=", "7"),), columns=("partition", "date"))
"""The filtered view: one task in 64, with two parameter columns."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=100_000, help="tasks in the workspace")
    parser.add_argument("--runs", type=int, default=5, help="runs per contender (median)")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory, stardag_up(Path(directory)) as url:
        workspace_id = graphql(url, WORKSPACES)["organizations"][0]["workspaces"][0]["id"]
        started = time.perf_counter()
        register(url, workspace_id, arguments.tasks)
        print(f"registered {arguments.tasks} tasks in {time.perf_counter() - started:.1f} s\n")
        rows = []
        for name, view in (("whole workspace", View()), ("parameter filter", FILTERED)):
            rows.extend(contenders(url, workspace_id, name, view, arguments.runs))
        print_table(rows)


def contenders(
    url: str, workspace_id: str, name: str, view: View, runs: int
) -> list[tuple[str, str, list[float]]]:
    """The rows of one view: its floors, the queries alone, the bare frame, the explorer."""
    query = view.query_string()
    page = f"{url}/tasks" + (f"?{query}" if query else "")
    variables = {"w": workspace_id, "filter": view.task_filter()}
    tasks = graphql(url, TASKS, **variables, first=PAGE, after=None)["workspace"]["tasks"]
    with static_table(tasks["nodes"], view.columns) as floor:
        rows = [(name, "static HTML table (floor)", times(floor, FLOOR_DONE, runs))]
    for label, document, extra in (
        ("page query", TASKS, {"first": PAGE, "after": None}),
        ("filter keys query", FILTER_KEYS, {"filter": None}),
    ):
        seconds = query_times(url, document, {**variables, **extra}, runs)
        rows.append((name, f"registry {label} alone", seconds))
    rows.append((name, "GUI frame, empty page", times(f"{url}/empty", FRAME_DONE, runs)))
    rows.append((name, "task explorer", times(page, explorer_done(tasks["totalCount"]), runs)))
    return rows


def register(url: str, workspace_id: str, count: int) -> None:
    """``count`` tasks of a few families with date, partition and seed parameters."""
    rng = random.Random(0)
    families = [("ingest", "load"), ("features", "aggregate"), ("training", "fit")]
    for start in range(0, count, BATCH):
        batch = []
        for i in range(start, min(start + BATCH, count)):
            namespace, name = families[i % len(families)]
            batch.append(
                {
                    "taskId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    "namespace": namespace,
                    "name": name,
                    "parameters": {
                        "date": f"2026-{i % 12 + 1:02d}-{i % 28 + 1:02d}",
                        "partition": i % 64,
                        "seed": rng.getrandbits(32),
                    },
                }
            )
        graphql(url, REGISTER, w=workspace_id, tasks=batch)


def explorer_done(total: int) -> str:
    """The page shows a full first page of rows and the count of all matching tasks."""
    shown = min(total, PAGE)
    return (
        f"document.querySelectorAll('.tasks-table tbody tr').length === {shown}"
        f" && document.querySelector('.page-position').textContent.endsWith('of {total}')"
    )


FLOOR_DONE = "document.querySelectorAll('tbody tr').length > 0"
"""The static table has its rows."""
FRAME_DONE = "document.body.textContent.includes('404: sub page')"
"""The frame (header, workspace selector) around a sub page that does not exist."""


def times(page: str, condition_js: str, runs: int) -> list[float]:
    """Seconds from navigating to ``page`` until ``condition_js`` holds, in fresh browsers."""
    return [open_until(page, condition_js) for _ in range(runs)]


def query_times(url: str, document: str, variables: dict[str, Any], runs: int) -> list[float]:
    """Seconds the registry takes to answer ``document``, over HTTP."""
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        graphql(url, document, **variables)
        seconds.append(time.perf_counter() - started)
    return seconds


def open_until(page: str, condition_js: str) -> float:
    """Seconds from navigating a fresh browser to ``page`` until ``condition_js`` holds
    (polled every 10 ms)."""
    driver = chromium()
    try:
        started = time.perf_counter()
        driver.get(page)
        deadline = started + TIMEOUT
        while not driver.execute_script(
            f"try {{ return !!({condition_js}); }} catch {{ return false; }}"
        ):
            if time.perf_counter() > deadline:
                raise RuntimeError(f"{page}: never reached {condition_js}")
            time.sleep(0.01)
        return time.perf_counter() - started
    finally:
        driver.quit()


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
def static_table(tasks: list[dict[str, Any]], columns: tuple[str, ...]) -> Iterator[str]:
    """A static page on loopback with ``tasks`` as a plain HTML table; yields its URL."""
    header = ["task", "namespace", "status", "task id", *columns]
    cells = [
        [t["name"], t["namespace"], t["status"], t["taskId"][:8]]
        + [str(t["parameters"].get(column, "")) for column in columns]
        for t in tasks
    ]
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in cells
    )
    with tempfile.TemporaryDirectory() as directory:
        (Path(directory) / "table.html").write_text(
            "<!doctype html><html><body><table><thead><tr>"
            + "".join(f"<th>{name}</th>" for name in header)
            + f"</tr></thead><tbody>{body}</tbody></table></body></html>"
        )
        handler = functools.partial(QuietHandler, directory=directory)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_port}/table.html"
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


def print_table(rows: list[tuple[str, str, list[float]]]) -> None:
    """Medians (and the slowest run) with ratios to each view's first row, its floor."""
    print("| view | contender | median | slowest | ratio to the floor |")
    print("|---|---|---:|---:|---:|")
    floors: dict[str, float] = {}
    for view, contender, seconds in rows:
        median = statistics.median(seconds)
        floor = floors.setdefault(view, median)
        print(
            f"| {view} | {contender} | {median:.3f} s | {max(seconds):.3f} s "
            f"| {median / floor:.1f} |"
        )


if __name__ == "__main__":
    main()
