"""``stardag up``: the registry and the GUI in one process, on loopback, with no login.

The registry's routes (``/graphql``, GraphiQL, ``/healthz``) are served next to the GUI's
pages on one port, so a pipeline reports to the same URL the browser opens; the GUI is still
only a client of the GraphQL API, over loopback HTTP. With ``demo`` the example pipeline is
built into the fresh registry once it answers.
"""

import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
from nicegui import app

import stardag_core as sd
from stardag_core.demo import demo_dag
from stardag_core.registry_client import GraphQLRegistry
from stardag_graphql.app import create_app
from stardag_graphql.server import check_host, freeze_heap
from stardag_graphql.settings import Settings
from stardag_gui.app import run
from stardag_gui.context import Connection

WORKSPACES = "{ organizations { workspaces { id } } }"


def up(settings: Settings, home: Path, *, host: str, port: int, demo: bool) -> None:
    """Serve the registry of ``settings`` and the GUI at ``host:port`` until interrupted."""
    check_host(host, server_mode=False)
    registry = create_app(settings)
    app.router.routes[0:0] = registry.routes
    url = f"http://{_authority(host)}:{port}"
    gui_lifespan = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(served: Any) -> AsyncIterator[None]:
        # The registry's database is open before the first request, and closed after the last.
        async with registry.router.lifespan_context(registry), gui_lifespan(served):
            if demo:
                threading.Thread(target=build_demo, args=(url, home), daemon=True).start()
            yield

    app.router.lifespan_context = lifespan
    freeze_heap()
    run(Connection(url), host=host, port=port, storage=home / "gui")


def build_demo(url: str, home: Path) -> None:
    """Build the demo pipeline, reporting to the registry at ``url`` once it answers."""
    workspace = _once_listening(lambda: httpx.post(f"{url}/graphql", json={"query": WORKSPACES}))
    workspace_id = workspace["data"]["organizations"][0]["workspaces"][0]["id"]
    registry = GraphQLRegistry(url, workspace_id, outbox=home / "outbox" / "up-demo.db")
    try:
        summary = sd.build(demo_dag(), registry=registry)
        registry.flush(30)
    finally:
        registry.close()
    print(
        f"demo pipeline: {len(summary.built)} tasks built, {len(summary.skipped)} already "
        f"complete; see its build at {url}/",
        flush=True,
    )


def _authority(host: str) -> str:
    """``host`` as it goes into a URL (an IPv6 address in brackets)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _once_listening(request: Callable[[], httpx.Response], timeout: float = 30.0) -> Any:
    """The JSON answer of ``request``, tried until the server listens (it starts in parallel)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return request().raise_for_status().json()
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
