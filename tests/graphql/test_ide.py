"""GraphiQL works offline: the page loads only local assets, and it runs queries in Chromium."""

import re
from collections.abc import AsyncIterator, Iterator
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
import strawberry
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait
from starlette.applications import Starlette
from starlette.routing import Route, WebSocketRoute

from stardag_graphql.ide import STATIC_DIR, OfflineGraphQL, static_mount
from tests.conftest import serving

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CONTENT_TYPES = {".js": "javascript", ".css": "text/css"}
# How long the browser may take to show a result: generous, as CI machines are shared and busy.
WAIT_SECONDS = 20


@strawberry.type
class Query:
    @strawberry.field
    def hello(self) -> str:
        return "Hello, offline world"


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def countdown(self) -> AsyncIterator[int]:
        for number in (2, 1, 0):
            yield number


def make_app() -> Starlette:
    graphql = OfflineGraphQL[None, None](strawberry.Schema(query=Query, subscription=Subscription))
    return Starlette(
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            static_mount(),
        ]
    )


async def test_the_page_loads_only_assets_the_package_serves() -> None:
    transport = httpx.ASGITransport(app=make_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        page = await client.get("/graphql", headers={"Accept": "text/html"})
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert not re.search(r"https?://", page.text), "the page names a remote URL"

        urls = linked_urls(page.text)
        assets = [url for url in urls if not url.startswith("data:")]
        assert {url.rsplit("/", 1)[1] for url in assets} == {
            "graphiql.min.js",
            "graphiql.min.css",
            "react.production.min.js",
            "react-dom.production.min.js",
            "plugin-explorer.umd.js",
            "plugin-explorer.css",
        }
        for url in assets:
            assert url.startswith("/static/graphiql/"), f"asset not served locally: {url}"
            response = await client.get(url)
            assert response.status_code == 200, url
            assert CONTENT_TYPES[Path(url).suffix] in response.headers["content-type"], url
            assert response.content == (STATIC_DIR / Path(url).name).read_bytes()


async def test_the_view_still_answers_queries() -> None:
    transport = httpx.ASGITransport(app=make_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.post("/graphql", json={"query": "{ hello }"})
        assert response.json() == {"data": {"hello": "Hello, offline world"}}


def test_graphiql_renders_and_runs_a_query_with_the_internet_blocked(
    graphiql: webdriver.Chrome,
) -> None:
    run(graphiql, "{ hello }")
    wait_until_text(graphiql, ".graphiql-response", "Hello, offline world")


def test_subscriptions_run_over_the_pages_websocket(graphiql: webdriver.Chrome) -> None:
    run(graphiql, "subscription { countdown }")
    wait_until_text(graphiql, ".graphiql-response", '"countdown": 0')


def test_the_explorer_plugin_lists_the_query_fields(graphiql: webdriver.Chrome) -> None:
    wait_until_visible(graphiql, "button[aria-label='Show GraphiQL Explorer']").click()
    wait_until_text(graphiql, ".graphiql-explorer-root", "hello")


def run(graphiql: webdriver.Chrome, query: str) -> None:
    """Put the query into GraphiQL's editor and press the run button."""
    editor = wait_until_visible(graphiql, ".graphiql-query-editor .CodeMirror")
    graphiql.execute_script("arguments[0].CodeMirror.setValue(arguments[1])", editor, query)
    # GraphiQL parses the text 100 ms after a change and sends the operation by what it parsed
    # last (a subscription over the websocket): a click before that sends it the old way.
    WebDriverWait(graphiql, WAIT_SECONDS).until(
        lambda browser: browser.execute_script(
            "const parsed = arguments[0].CodeMirror.documentAST;"
            "return parsed !== null && parsed.loc.source.body === arguments[1]",
            editor,
            query,
        )
    )
    graphiql.find_element(By.CSS_SELECTOR, ".graphiql-execute-button").click()


def linked_urls(page: str) -> list[str]:
    """The `src` of every script and the `href` of every link on the page."""
    parser = _AssetParser()
    parser.feed(page)
    return parser.urls


class _AssetParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        url = found.get("src") if tag == "script" else found.get("href")
        if url and tag in {"script", "link"}:
            self.urls.append(url)


def wait_until_visible(browser: webdriver.Chrome, selector: str) -> WebElement:
    """The first element matching the CSS selector, once it is visible."""
    located = expected_conditions.visibility_of_element_located((By.CSS_SELECTOR, selector))
    return WebDriverWait(browser, WAIT_SECONDS).until(located)


def wait_until_text(browser: webdriver.Chrome, selector: str, text: str) -> None:
    """Wait until the element matching the CSS selector contains the text."""
    found = expected_conditions.text_to_be_present_in_element((By.CSS_SELECTOR, selector), text)
    WebDriverWait(browser, WAIT_SECONDS).until(found)


@pytest.fixture
def graphiql(server: str, browser: webdriver.Chrome) -> Iterator[webdriver.Chrome]:
    """The browser on a fresh GraphiQL page; afterwards, checks what the page loaded."""
    # GraphiQL keeps its tabs in localStorage: start every test from the default editor.
    browser.execute_cdp_cmd(
        "Storage.clearDataForOrigin", {"origin": server, "storageTypes": "local_storage"}
    )
    # A fresh tab: a page left from the previous test keeps its websocket client.
    previous = browser.current_window_handle
    browser.switch_to.new_window("tab")
    new = browser.current_window_handle
    browser.switch_to.window(previous)
    browser.close()
    browser.switch_to.window(new)
    browser.get(f"{server}/graphql")
    yield browser
    assert_loaded_only_from(server, browser)


def assert_loaded_only_from(server: str, browser: webdriver.Chrome) -> None:
    """Every resource came from the server, and the console logged no error."""
    resources = browser.execute_script(
        "return performance.getEntriesByType('resource').map(entry => entry.name)"
    )
    assert resources
    assert all(url.startswith(f"{server}/") for url in resources), resources
    log = browser.get_log("browser")  # type: ignore[no-untyped-call]  # untyped in selenium
    errors = [entry for entry in log if entry["level"] == "SEVERE"]
    assert not errors, errors


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """The test app under uvicorn on a free loopback port."""
    with serving(make_app()) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    """Headless Chromium that can reach loopback only (Debian's chromium, no selenium-manager)."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not found: the offline GraphiQL test needs Chromium; "
            "run `apt-get install -y --no-install-recommends chromium chromium-driver`"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=str(CHROMEDRIVER))
    with pytest.MonkeyPatch.context() as patch:
        # Keep selenium-manager from looking for drivers or sending statistics online.
        patch.setenv("SE_OFFLINE", "true")
        patch.setenv("SE_AVOID_STATS", "true")
        driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()


CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--window-size=1280,800",
    # Every host but loopback fails to resolve: a CDN request would fail the test.
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
