"""The command line against a real registry on loopback: signing in (PKCE in a browser, and
the device flow) at the test identity provider, profiles, target roots, tasks and lineage, and
builds that report to the configured workspace. Secrets never show in any output."""

import asyncio
import logging
import os
import re
import signal
import stat
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

import stardag_core as sd
from stardag_core import login
from stardag_core.cli import app
from stardag_core.client import configured_registry
from stardag_graphql.app import create_app
from stardag_graphql.migrations import ensure_schema
from stardag_graphql.settings import Settings
from tests.conftest import free_port, serving
from tests.core.examples.pipeline import layered
from tests.core.test_build import Broken
from tests.graphql.conftest import server_settings, serving_settings
from tests.graphql.tenants import ServerMode, make_tenant
from tests.graphql.test_build_locks import walk
from tests.identity_provider import IdentityProvider

SET_ROOT = """mutation($w: ID!, $n: String!, $u: String!) {
  setTargetRoot(workspaceId: $w, name: $n, uri: $u) { name }
}"""
WORKSPACE_ID = "{ organizations { workspaces { id } } }"


def stardag(*args: str, input: str | None = None, **env: str) -> Result:
    """Run the command line in this process, the way typer's runner does."""
    result = CliRunner().invoke(app, list(args), input=input, env={"COLUMNS": "200", **env})
    assert "Traceback" not in result.output, result.output
    return result


def ok(*args: str, input: str | None = None, **env: str) -> str:
    result = stardag(*args, input=input, **env)
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def failed(*args: str, **env: str) -> str:
    result = stardag(*args, **env)
    assert result.exit_code == 1, result.output
    return " ".join(result.output.split())


def local_workspace(url: str) -> str:
    """The id of the workspace of the registry at `url`, in local mode."""
    return str(graphql(url, WORKSPACE_ID)["organizations"][0]["workspaces"][0]["id"])


def graphql(url: str, query: str, credential: str | None = None, **variables: Any) -> Any:
    headers = {"Authorization": f"Bearer {credential}"} if credential else {}
    response = httpx.post(
        f"{url}/graphql", json={"query": query, "variables": variables}, headers=headers
    )
    body = response.json()
    assert not body.get("errors"), body
    return body["data"]


def flush_configured_registry() -> None:
    registry = configured_registry()
    assert registry is not None
    assert registry.flush(10)


@pytest.fixture
def local_registry(tmp_path: Path) -> Iterator[str]:
    """A registry in local mode (no sign-in) on SQLite, on loopback."""
    database = f"sqlite+aiosqlite:///{tmp_path / 'registry.db'}"
    with serving_settings(Settings(database_url=database)) as url:
        yield url


@pytest.fixture
def local_profile(local_registry: str) -> str:
    """The local registry added and signed in to: `auth login` creates the first profile."""
    ok("registry", "add", "local", "--url", local_registry)
    output = ok("auth", "login", input="\n\n\n")
    assert "runs in local mode: nobody needs to sign in" in output
    assert "Created profile 'local-default' and made it the default" in output
    return local_registry


def test_the_first_login_creates_a_profile_that_every_command_uses(local_profile: str) -> None:
    profiles = ok("profile", "list")
    assert "* local-default local local default" in profiles
    assert "Active: 'local-default', because it is the default of the user configuration" in (
        profiles
    )
    assert f"* local {local_profile}" in ok("registry", "list")
    status = ok("auth", "status")
    assert "workspace local/default" in status
    assert "the registry accepts the credential, as local@localhost" in status
    assert "* local Local owner" in ok("organizations", "list")
    assert "* local default Default" in ok("workspaces", "list")
    assert "The workspace has no target roots: builds write under" in ok("target-roots", "list")
    again = ok("auth", "login")
    assert "Using profile 'local-default'" in again
    assert "Organization" not in again


def test_a_build_reports_to_the_configured_workspace_under_its_root(
    local_profile: str, tmp_path: Path
) -> None:
    workspace = local_workspace(local_profile)
    graphql(local_profile, SET_ROOT, w=workspace, n="default", u=str(tmp_path / "outputs"))
    assert "new: synced at the next build" in ok("target-roots", "list")

    tops = layered(width=2, depth=2)
    sd.build(*tops).raise_on_failure()
    flush_configured_registry()
    dag = tops[0]

    assert dag.output().uri.startswith(f"{tmp_path}/outputs/")
    assert "default " + str(tmp_path / "outputs") + " synced" in ok("target-roots", "list")
    tasks = ok("tasks", "list")
    assert "6 of 6 tasks" in tasks
    assert str(dag.id) in tasks
    shown = ok("tasks", "show", str(dag.id)[:8])
    assert f"examples.pipeline.Add {dag.id}" in shown
    assert "status completed" in shown
    assert "needs (2)" in shown
    lineage = ok("lineage", str(dag.id))
    assert lineage.count("examples.pipeline.Add") == 3
    assert lineage.count("examples.pipeline.Number") == 4
    assert lineage.count("(shown above)") == 2
    assert str(dag.id) in ok("lineage", str(dag.left.id), "--downstream")
    assert "no task 'ffffffff'" in failed("tasks", "show", "ffffffff")


def test_a_failed_task_shows_its_latest_events_and_its_error(
    local_profile: str, tmp_path: Path
) -> None:
    workspace = local_workspace(local_profile)
    graphql(local_profile, SET_ROOT, w=workspace, n="default", u=str(tmp_path / "outputs"))
    task = Broken()
    for _ in range(6):  # a start and a failure each: 12 events
        assert not sd.build(task).ok
    flush_configured_registry()

    # The task's own traceback is shown, so this one runs without `ok`'s check for one.
    result = CliRunner().invoke(app, ["tasks", "show", str(task.id)])
    assert result.exit_code == 0, result.output
    shown = " ".join(result.output.split())
    assert "status failed" in shown
    assert "events (the last 10 of 12)" in shown
    assert shown.count("task_failed") == 5
    assert 'in run raise RuntimeError("disk on fire") RuntimeError: disk on fire' in shown


ACQUIRE = """mutation($w: ID!, $key: String!) {
  acquireLock(workspaceId: $w, key: $key, holder: "probe", ttlSeconds: 60) {
    lease { fencingToken }
  }
}"""


def test_build_with_locks_leases_each_task_from_the_configured_registry(
    local_profile: str, tmp_path: Path
) -> None:
    workspace = local_workspace(local_profile)
    graphql(local_profile, SET_ROOT, w=workspace, n="default", u=str(tmp_path / "outputs"))
    target = "tests.core.examples.pipeline:layered(width=2, depth=2)"
    tasks = {task.id: task for top in layered(width=2, depth=2) for task in walk(top)}
    assert len(tasks) == 6

    assert "6 built" in ok("build", target, "--locks", "--lock-ttl", "30", "--no-progress")
    flush_configured_registry()

    # Every grant of a lock to a new lease raises its fencing token: the build's lease on
    # each task had token 1, so a later holder's is 2 (a lock never taken would give 1).
    tokens = {
        graphql(local_profile, ACQUIRE, w=workspace, key=f"task:{task.id}")["acquireLock"]["lease"][
            "fencingToken"
        ]
        for task in tasks.values()
    }
    assert tokens == {2}


def test_build_with_locks_and_no_registry_says_how_to_configure_one(tmp_path: Path) -> None:
    target = "tests.core.examples.pipeline:layered(width=2, depth=2)"
    message = failed("build", target, "--locks", STARDAG_TARGET_ROOTS__DEFAULT=str(tmp_path))
    assert "needs a registry that holds build locks, and no registry is configured" in message
    assert "stardag profile use NAME" in message
    assert not list(tmp_path.iterdir())


def test_a_moved_root_stops_builds_until_synced_and_reads_work_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = f"sqlite+aiosqlite:///{tmp_path / 'registry.db'}"
    settings = Settings(database_url=database)
    with serving_settings(settings) as url:
        monkeypatch.setenv("STARDAG_REGISTRY_URL", url)
        workspace = local_workspace(url)
        graphql(url, SET_ROOT, w=workspace, n="default", u=str(tmp_path / "first"))
        assert "added default" in ok("target-roots", "sync")
        graphql(url, SET_ROOT, w=workspace, n="default", u=str(tmp_path / "second"))

        with pytest.raises(sd.ConfigError) as caught:
            sd.build(*layered(width=1, depth=1))
        assert f"'default' moved from {tmp_path}/first to {tmp_path}/second" in str(caught.value)
        assert "run `stardag target-roots sync`" in str(caught.value)
        refused = failed("build", "tests.core.examples.pipeline:layered(width=1, depth=1)")
        assert "run `stardag target-roots sync`" in refused
        assert f"changed (cached: {tmp_path}/first)" in ok("target-roots", "list")

        assert f"changed default: {tmp_path}/first → {tmp_path}/second" in ok(
            "target-roots", "sync"
        )
        sd.build(*layered(width=1, depth=1)).raise_on_failure()
        flush_configured_registry()
    # The registry is gone: settings, listings and builds use the roots as last synced.
    assert sd.Settings.configured().target_root("default") == str(tmp_path / "second")
    offline = ok("target-roots", "list")
    assert "offline: cannot reach the registry" in offline
    assert f"default {tmp_path}/second cached" in offline
    (dag, *_) = layered(width=2, depth=1)
    sd.build(dag).raise_on_failure()
    assert dag.output().uri.startswith(f"{tmp_path}/second/")
    assert "cannot reach the registry" in failed("tasks", "list")


def test_a_workspace_without_roots_builds_offline_once_it_built_online(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'registry.db'}")
    port = free_port()
    first, offline = layered(width=1, depth=1)[0], layered(width=2, depth=1)[1]
    asyncio.run(ensure_schema(settings))
    monkeypatch.setenv("STARDAG_REGISTRY_URL", f"http://127.0.0.1:{port}")
    with pytest.raises(sd.RegistryError, match="cannot start offline, since the workspace"):
        sd.build(first)  # never synced: where would its outputs go?
    with serving(create_app(settings), port):
        sd.build(first).raise_on_failure()  # the workspace's roots (none) are synced
        flush_configured_registry()
    # The registry is down: the build runs under the default root, its reports wait.
    sd.build(offline).raise_on_failure()
    assert "cannot reach the registry" in failed("tasks", "list")
    with serving(create_app(settings), port):
        flush_configured_registry()
        shown = ok("tasks", "show", str(offline.id))
    assert "status completed" in shown


RUNNING = """query($w: ID!) { workspace(id: $w) {
  tasks(filter: {statuses: [RUNNING]}, first: 1) { totalCount }
  builds(first: 1) { nodes { status tasks(first: 50) { nodes { status } } } }
} }"""


def test_an_interrupted_build_is_cancelled_in_the_registry(
    local_registry: str, tmp_path: Path
) -> None:
    workspace = local_workspace(local_registry)
    target = "tests.core.examples.pipeline:[Nap(key=i, seconds=1.0) for i in range(12)]"
    build = subprocess.Popen(
        stardag_process("build", target, "--workers", "2", "--no-progress"),
        env={**os.environ, "STARDAG_REGISTRY_URL": local_registry},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not graphql(local_registry, RUNNING, w=workspace)["workspace"]["tasks"]["totalCount"]:
        assert time.monotonic() < deadline, "no task of the build ever ran"
        assert build.poll() is None, build.communicate()
        time.sleep(0.05)
    build.send_signal(signal.SIGINT)  # Ctrl+C
    _, stderr = build.communicate(timeout=60)

    assert build.returncode == 130
    assert "cancelled: no task started after the interrupt" in stderr
    assert "Traceback" not in stderr
    data = graphql(local_registry, RUNNING, w=workspace)["workspace"]
    (record,) = data["builds"]["nodes"]
    statuses = Counter(task["status"] for task in record["tasks"]["nodes"])
    assert record["status"] == "CANCELLED"
    assert statuses["CANCELLED"] >= 1
    assert data["tasks"]["totalCount"] == 0  # none left running
    assert statuses["COMPLETED"] < 12


# Server mode: signing in at the identity provider.


@pytest.fixture
def server_registry(
    tmp_path: Path, identity_provider: IdentityProvider
) -> Iterator[tuple[str, Settings]]:
    """A registry in server mode on SQLite, signing in through the test identity provider."""
    database = f"sqlite+aiosqlite:///{tmp_path / 'registry.db'}"
    settings = server_settings(database, identity_provider, tmp_path / "key.pem")
    with serving_settings(settings) as url:
        yield url, settings


def person(provider: IdentityProvider) -> tuple[str, str]:
    sub = f"p-{uuid.uuid4().hex[:8]}"
    provider.add_user(sub, f"{sub}@example.com")
    return sub, f"{sub}@example.com"


def browser(tmp_path: Path) -> Path:
    """A 'browser' for webbrowser ($BROWSER): it follows the sign-in page's redirects to the
    command's loopback callback, as a person's browser would once they signed in."""
    script = tmp_path / "browser"
    script.write_text(
        f"#!{sys.executable}\nimport sys, httpx\n"
        "httpx.get(sys.argv[1], follow_redirects=True, timeout=30).raise_for_status()\n"
    )
    script.chmod(0o755)
    return script


def stardag_process(*args: str) -> list[str]:
    return [sys.executable, "-m", "stardag_core", *args]


def secrets_in(home: Path) -> list[str]:
    """Every secret value in the credential files."""
    found = []
    for path in (home / ".stardag" / "credentials").glob("*.json"):
        text = path.read_text()
        found += re.findall(r'"(?:access_token|refresh_token)": "([^"]+)"', text)
    assert found
    return found


def test_browser_login_with_pkce_asks_for_a_workspace_and_keeps_no_secret_in_sight(
    server_registry: tuple[str, Settings],
    identity_provider: IdentityProvider,
    tmp_path: Path,
    hermetic_home: Path,
) -> None:
    url, _ = server_registry
    sub, email = person(identity_provider)
    identity_provider.login_as(sub)
    ok("registry", "add", "team", "--url", url)
    login = subprocess.run(
        stardag_process("auth", "login"),
        input="\n\nmine\n",
        env={**os.environ, "BROWSER": str(browser(tmp_path)), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert login.returncode == 0, login.stderr
    said = " ".join(login.stdout.split())
    assert "Opening the sign-in page in your browser" in said
    assert f"Signed in to {url} as {email}" in said
    assert "Workspace (default) [default]" in said
    assert "Created profile 'mine' and made it the default" in said

    outputs = [login.stdout, login.stderr]
    outputs.append(ok("profile", "list"))
    status = ok("auth", "status")
    assert f"signed in as {email} at {identity_provider.issuer}" in status
    assert f"the registry accepts the credential, as {email}" in status
    outputs += [status, ok("tasks", "list"), ok("workspaces", "list"), ok("auth", "refresh")]
    credentials = hermetic_home / ".stardag" / "credentials"
    assert all(stat.S_IMODE(path.stat().st_mode) == 0o600 for path in credentials.glob("*.json"))
    for secret in secrets_in(hermetic_home):
        assert all(secret not in output for output in outputs)

    (kept,) = set(secrets_in(hermetic_home)) & identity_provider.live_refresh_tokens()
    signed_out = ok("auth", "logout")
    assert f"Signed out of {url}" in signed_out
    assert f"The identity provider {identity_provider.issuer} revoked the sign-in" in signed_out
    assert kept not in identity_provider.live_refresh_tokens()
    assert f"Not signed in to {url}" in ok("auth", "logout")
    assert "needs a credential" in failed("tasks", "list")
    assert "stardag auth login" in failed("tasks", "list")


def test_device_login_with_an_active_profile_uses_its_registry_without_prompts(
    server_registry: tuple[str, Settings], identity_provider: IdentityProvider
) -> None:
    url, _ = server_registry
    sub, email = person(identity_provider)
    ok("registry", "add", "team", "--url", url)
    ok("profile", "add", "work", "--registry", "team", "--workspace", "default")
    with subprocess.Popen(
        stardag_process("auth", "login", "--device"),
        env={**os.environ, "COLUMNS": "200"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            found = re.search(r"enter the code (\S+)", line)
            if found:
                identity_provider.approve_device(found.group(1), sub)
                break
        rest, stderr = process.communicate(timeout=60)
    said = " ".join("".join([*lines, rest]).split())
    assert process.returncode == 0, stderr
    assert "Using profile 'work' (it is the default of the user configuration" in said
    assert f"visit {identity_provider.issuer}/device" in said
    assert f"Signed in to {url} as {email}" in said
    assert "Organization" not in said
    assert "workspace default" in ok("auth", "status")
    assert "0 of 0 tasks" in ok("tasks", "list")


def test_a_refused_sign_in_is_an_error_message(
    server_registry: tuple[str, Settings], identity_provider: IdentityProvider, tmp_path: Path
) -> None:
    url, _ = server_registry
    identity_provider.login_as(None)
    ok("registry", "add", "team", "--url", url)
    login = subprocess.run(
        stardag_process("auth", "login"),
        env={**os.environ, "BROWSER": str(browser(tmp_path))},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert login.returncode == 1
    assert "the identity provider refused the sign-in: access_denied" in login.stderr
    assert "Traceback" not in login.stderr


async def test_three_variables_make_a_worker_that_reports_with_an_api_key(
    server_mode: ServerMode, tmp_path: Path
) -> None:
    tenant = await make_tenant(server_mode.sessions)
    owner = server_mode.token(tenant, "owner")
    await server_mode.post(
        SET_ROOT, owner, w=tenant.workspace, n="default", u=str(tmp_path / "outputs")
    )
    worker = {
        "STARDAG_REGISTRY_URL": server_mode.url,
        "STARDAG_API_KEY": tenant.api_key,
        "STARDAG_WORKSPACE": "default",
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in worker.items():
            patch.setenv(name, value)
        tops = layered(width=2, depth=2)
        await asyncio.to_thread(lambda: sd.build(*tops).raise_on_failure())
        dag = tops[0]
        await asyncio.to_thread(flush_configured_registry)
        assert dag.output().uri.startswith(f"{tmp_path}/outputs/")
        listed = await asyncio.to_thread(ok, "tasks", "list")
        status = await asyncio.to_thread(ok, "auth", "status")
    assert "7 of 7 tasks" in listed  # and the tenant's own task
    assert str(dag.id) in listed
    assert "credential: the API key in STARDAG_API_KEY" in status
    assert tenant.api_key not in listed + status

    with pytest.MonkeyPatch.context() as patch:
        for name, value in {**worker, "STARDAG_API_KEY": tenant.revoked_key}.items():
            patch.setenv(name, value)
        refused = await asyncio.to_thread(failed, "tasks", "list")
    assert "the API key is not valid" in refused
    assert tenant.revoked_key not in refused


def test_an_unreachable_registry_is_one_line_without_a_traceback() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    message = failed("workspaces", "list", STARDAG_REGISTRY_URL=url)
    assert message.startswith(f"error: cannot reach the registry at {url}")


def test_signing_in_logs_and_shows_no_secret(
    server_registry: tuple[str, Settings],
    identity_provider: IdentityProvider,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url, _ = server_registry
    sub, _ = person(identity_provider)
    identity_provider.login_as(sub)
    caplog.set_level(logging.DEBUG)
    with httpx.Client(timeout=30) as http:
        config = login.AuthConfig.fetch(http, url)
        assert config is not None
        provider = login.Provider.discover(http, config.issuer)
        in_browser = login.browser_login(
            http, config, provider, lambda page: httpx.get(page, follow_redirects=True)
        )
        on_device = login.device_login(
            http,
            config,
            provider,
            lambda code: identity_provider.approve_device(code.user_code, sub),
        )
        token = login.exchange(http, url, in_browser.access_token.get_secret_value(), None)
    secrets = [tokens.access_token.get_secret_value() for tokens in (in_browser, on_device)] + [
        token.access_token.get_secret_value()
    ]
    secrets += [
        t.refresh_token.get_secret_value() for t in (in_browser, on_device) if t.refresh_token
    ]
    assert len(secrets) == 5
    # The test provider (authlib, in this process) logs what it issues; a real one is elsewhere.
    ours = [r for r in caplog.records if not r.name.startswith(("authlib", "werkzeug"))]
    assert any(record.name.startswith("httpx") for record in ours)
    shown = "\n".join(r.getMessage() for r in ours) + repr((in_browser, on_device, token))
    assert all(secret not in shown for secret in secrets)


def approve(provider: IdentityProvider, code: login.DeviceCode, sub: str) -> None:
    """The person approves the device login at once, on another device."""
    provider.approve_device(code.user_code, sub)
