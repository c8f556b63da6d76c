"""Shared fixtures: target roots on a local directory, in memory and on a real S3 server;
ASGI apps served by uvicorn on loopback."""

import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import s3fs
import uvicorn
from moto.server import ThreadedMotoServer
from starlette.types import ASGIApp

import stardag_core as sd
from stardag_core.config import reload_settings

S3_BUCKET = "stardag-tests"
CLIENT_VARIABLES = (
    "STARDAG_HOME",
    "STARDAG_PROFILE",
    "STARDAG_REGISTRY_URL",
    "STARDAG_API_KEY",
    "STARDAG_ORGANIZATION",
    "STARDAG_WORKSPACE",
)

# Set in pytest-xdist's workers (80 x 24). A rich console created while they are set keeps that
# size for good, so the CLI's consoles would ignore the width each CLI test gives its run.
for variable in ("COLUMNS", "LINES"):
    os.environ.pop(variable, None)


@pytest.fixture(autouse=True)
def hermetic_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """Every test runs in a fresh, empty home directory without the client's `STARDAG_*`
    variables: a developer's ~/.stardag (configuration, credentials, outputs, outboxes) is
    never read or written. Yields the home directory."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    for variable in CLIENT_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    reload_settings()
    yield home
    reload_settings()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on loopback with one bucket; botocore finds it through the env."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    saved = {key: os.environ.get(key) for key in _S3_ENV}
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=endpoint,
    )
    s3fs.S3FileSystem(skip_instance_cache=True).mkdir(S3_BUCKET)
    try:
        yield endpoint
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


_S3_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL")


@pytest.fixture
def local_root(tmp_path: Path) -> Iterator[str]:
    """A fresh local directory as the default target root."""
    root = str(tmp_path / "outputs")
    with sd.use_settings(sd.Settings(target_roots={"default": root})):
        yield root


@pytest.fixture(params=["local", "memory", "s3"])
def any_root(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh default target root on each kind of filesystem."""
    prefix = uuid.uuid4().hex
    if request.param == "local":
        root = str(tmp_path / "outputs")
    elif request.param == "memory":
        root = f"memory://stardag-tests/{prefix}"
    else:
        request.getfixturevalue("s3_endpoint")
        root = f"s3://{S3_BUCKET}/{prefix}"
    with sd.use_settings(sd.Settings(target_roots={"default": root})):
        yield root


@contextlib.contextmanager
def serving(app: ASGIApp, port: int | None = None) -> Iterator[str]:
    """`app` under uvicorn on a loopback port (a free one unless given), in a background
    thread; yields its URL."""
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail(f"uvicorn did not start on 127.0.0.1:{port}")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
