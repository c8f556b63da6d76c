"""What the GUI benchmarks (bench/gui.py, bench/gui_explorer.py) share: a fresh `stardag up`,
a fresh headless Chromium that reaches loopback only, timing a page until JavaScript
conditions hold, a static page on loopback (the floor), the registry's GraphQL API over HTTP
and the results table.

Not a workload script: the benchmarks in bench/ import it as `workloads.browser` (bench/ is
the first entry of `sys.path` when they run as `python bench/gui.py`).
"""

import contextlib
import functools
import http.server
import json
import os
import shutil
import statistics
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from workloads.serving import free_port, stardag_server

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
"""The longest wait for anything (a page's condition, `stardag up`, a GraphQL answer)."""


@dataclass(frozen=True)
class Row:
    """One line of the results table."""

    workload: str
    contender: str
    seconds: list[float]


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
    home = {"STARDAG_HOME": str(directory / "home")}
    with stardag_server("up", directory, environment=home, timeout=TIMEOUT) as server:
        yield server.url


@contextlib.contextmanager
def static_page(name: str, text: str, assets: Path | None = None) -> Iterator[str]:
    """The page ``name`` holding ``text``, served from a fresh folder on loopback (with a copy
    of the files in ``assets`` beside it, if given); yields its URL."""
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        if assets is not None:
            shutil.copytree(assets, root, dirs_exist_ok=True)
        (root / name).write_text(text)
        handler = functools.partial(QuietHandler, directory=directory)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_port}/{name}"
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
