"""`stardag up --demo`: the registry and the GUI in one process, the demo build in it."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from stardag_core.cli import app
from tests.conftest import free_port

BUILDS = "{ organizations { workspaces { builds(first: 5) { nodes { status } } } } }"


@pytest.fixture
def stardag_up(hermetic_home: Path) -> Iterator[str]:
    """`stardag up --demo` in a subprocess on a free port; yields its URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "stardag_core", "up", "--demo", "--port", str(port)],
        # Without pytest's variables: NiceGUI would take itself for a test's server.
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")},
            "HOME": str(hermetic_home),
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=30)[0].decode()
        assert process.returncode in (0, 130), output  # 130: stopped by Ctrl+C, cleanly
        assert "Traceback" not in output
        assert f"STARDAG_REGISTRY_URL={url}" in output
        assert "demo pipeline: 7 tasks built" in output


def builds(url: str, timeout: float = 60.0) -> list[dict[str, str]]:
    """The builds of the registry at ``url``, once there is a finished one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            answer = httpx.post(f"{url}/graphql", json={"query": BUILDS}).json()
        except httpx.TransportError:
            time.sleep(0.2)
            continue
        found = answer["data"]["organizations"][0]["workspaces"][0]["builds"]["nodes"]
        if found and found[0]["status"] != "RUNNING":
            return list(found)
        time.sleep(0.2)
    pytest.fail(f"no finished build appeared at {url} within {timeout} s")


def test_up_serves_the_registry_and_the_gui_on_one_port_with_the_demo_built(
    stardag_up: str,
) -> None:
    assert builds(stardag_up) == [{"status": "COMPLETED"}]
    assert httpx.get(f"{stardag_up}/healthz").json() == {"status": "ok"}
    page = httpx.get(f"{stardag_up}/")
    assert page.status_code == 200
    assert "Builds of" in page.text


def test_up_refuses_an_address_others_can_reach() -> None:
    result = CliRunner().invoke(app, ["up", "--host", "0.0.0.0", "--port", str(free_port())])

    assert result.exit_code != 0
    assert "loopback" in result.output


def test_up_names_a_port_in_use_and_the_fix() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        result = CliRunner().invoke(app, ["up", "--port", str(port)])

    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.output
    assert "--port" in result.output
