"""Signing in to a team deployment of the GUI: a registry in server mode on loopback, a real
OpenID Connect provider, and the GUI with ``sign_in``; the simulated browser follows the
redirects between the GUI and the provider as a browser would."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from nicegui import app
from nicegui.persistence import PersistentDict
from nicegui.storage import request_contextvar
from nicegui.testing import User
from pydantic import SecretStr
from typer.testing import CliRunner

from stardag_core.cli import app as cli
from stardag_core.credentials import LoginRecord, RegistryToken
from stardag_graphql.settings import Settings
from stardag_gui import signin
from stardag_gui.context import Connection
from stardag_gui.signin import SIGNED_IN, save, saved
from tests.conftest import free_port
from tests.graphql.conftest import AUDIENCE, CLIENT_ID, server_settings, serving_settings
from tests.gui.conftest import eventually, gui_on
from tests.gui.test_settings import create, open_settings
from tests.identity_provider import IdentityProvider

GUI_URL = "http://test"
"""Where the simulated browser reaches the GUI (NiceGUI's User client)."""


@pytest.fixture(scope="module")
def provider() -> Iterator[IdentityProvider]:
    """The identity provider, with the GUI's redirect registered for stardag's client."""
    with IdentityProvider(audience=AUDIENCE) as idp:
        idp.add_client(CLIENT_ID, ["http://127.0.0.1/callback", f"{GUI_URL}/auth/callback"])
        idp.add_user("ada", "ada@example.com")
        yield idp


@pytest.fixture(scope="module")
def team(provider: IdentityProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A registry in server mode signing people in through ``provider``; its URL."""
    directory = tmp_path_factory.mktemp("signin")
    settings = server_settings(
        f"sqlite+aiosqlite:///{directory / 'registry.db'}", provider, directory / "key.pem"
    )
    with serving_settings(settings) as url:
        yield url


@pytest.fixture
async def person(team: str, caplog: pytest.LogCaptureFixture) -> AsyncIterator[User]:
    """Someone in a browser on a GUI that makes each person sign in."""
    connection = Connection(team, sign_in=True, public_url=GUI_URL)
    async with gui_on(connection, caplog) as user:
        yield user


async def sign_in(user: User, provider: IdentityProvider, who: str = "ada") -> str:
    """Go through the sign-in as ``who``; where the GUI sends the browser at the end."""
    finish = await user.http_client.get(await provider_answer(user, provider, who))
    return str(finish.headers.get("location", ""))


async def provider_answer(user: User, provider: IdentityProvider, who: str | None) -> str:
    """Start a sign-in and let the provider answer as ``who`` (None: it refuses); the
    GUI's path (with its query) the provider sends the browser back to."""
    provider.login_as(who)
    start = await user.http_client.get("/auth/signin")
    assert start.status_code == 303
    authorize = start.headers["location"]
    assert authorize.startswith(f"{provider.issuer}/authorize?")
    assert "code_challenge_method=S256" in authorize
    async with httpx.AsyncClient() as browser:
        back = await browser.get(authorize)
    assert back.status_code == 302
    callback = urlsplit(back.headers["location"])
    assert f"{callback.scheme}://{callback.netloc}{callback.path}" == f"{GUI_URL}/auth/callback"
    return f"{callback.path}?{callback.query}"


def storage_of(user: User) -> PersistentDict:
    """The person's server-side storage, where the GUI keeps their sign-in."""
    assert user.client is not None
    request_contextvar.set(user.client.request)
    return app.storage.user


def registry_token(user: User) -> str:
    """The registry token the GUI acts with for the person."""
    signed_in = saved(storage_of(user))
    assert signed_in is not None
    return signed_in[1].access_token.get_secret_value()


async def signed_in(
    person: User, provider: IdentityProvider
) -> tuple[PersistentDict, LoginRecord, RegistryToken]:
    """Sign in as ada and wait for the builds page; the person's storage and the sign-in
    the GUI keeps there."""
    await sign_in(person, provider)
    await person.open("/")
    await person.should_see("Builds of", retries=50)
    store = storage_of(person)
    kept = saved(store)
    assert kept is not None
    return store, *kept


async def ask(team: str, token: str, query: str) -> Any:
    """The data of ``query`` asked of the registry with ``token``."""
    async with httpx.AsyncClient() as http:
        answer = await http.post(
            f"{team}/graphql",
            json={"query": query},
            headers={"Authorization": f"Bearer {token}"},
        )
    return answer.json()["data"]


async def viewer_email(team: str, token: str) -> str:
    """Whose ``token`` it is, as the registry says."""
    return str((await ask(team, token, "{ viewer { email } }"))["viewer"]["email"])


async def test_a_person_not_signed_in_sees_only_the_sign_in_page(person: User, team: str) -> None:
    await person.open("/")
    await person.should_see("Sign in to see your organization")
    await person.should_not_see("Builds of")

    await person.open("/settings")
    await person.should_see("Sign in to see your organization")
    await person.should_not_see("Organizations")

    assert saved(storage_of(person)) is None
    async with httpx.AsyncClient() as http:
        anonymous = await http.post(f"{team}/graphql", json={"query": "{ organizations { slug } }"})
    assert anonymous.status_code == 401


async def test_an_answer_for_no_sign_in_under_way_is_refused(person: User) -> None:
    await person.open("/auth/callback?code=stolen&state=guessed")

    await person.should_see("this sign-in answer is not for this browser")
    assert saved(storage_of(person)) is None


async def test_signing_in_end_to_end(person: User, provider: IdentityProvider, team: str) -> None:
    assert await sign_in(person, provider) == "/"

    await person.open("/")
    await person.should_see("Builds of", retries=50)
    assert await viewer_email(team, registry_token(person)) == "ada@example.com"
    await open_settings(person)
    await person.should_see("ada@example.com")
    await person.should_see("Sign out")


async def test_a_session_planted_before_the_sign_in_is_not_signed_in_by_it(
    person: User, provider: IdentityProvider
) -> None:
    await person.open("/")
    planted = httpx.Cookies(person.http_client.cookies)  # what an attacker put in the browser

    await sign_in(person, provider)

    assert "<title>stardag</title>" in (await person.http_client.get("/")).text
    person.http_client.cookies = planted
    assert "<title>stardag: sign in</title>" in (await person.http_client.get("/")).text
    assert saved(storage_of(person)) is not None  # the person stays signed in


async def test_a_refusal_at_the_provider_is_shown(person: User, provider: IdentityProvider) -> None:
    await person.open(await provider_answer(person, provider, None))

    await person.should_see("the identity provider refused the sign-in: access_denied")
    await person.should_see("Sign in to see your organization")
    assert saved(storage_of(person)) is None


async def test_an_expired_registry_token_is_renewed_with_the_refresh_token(
    person: User, provider: IdentityProvider, team: str
) -> None:
    store, record, token = await signed_in(person, provider)
    expired = token.model_copy(update={"expires_at": datetime.now(UTC) - timedelta(seconds=1)})
    save(store, record, expired)

    await person.open("/")
    await person.should_see("Builds of", retries=50)

    renewed = saved(storage_of(person))
    assert renewed is not None
    new_record, new_token = renewed
    assert new_token.fresh()
    assert new_token.access_token != token.access_token
    assert new_record.refresh_token != record.refresh_token
    assert await viewer_email(team, new_token.access_token.get_secret_value()) == (
        "ada@example.com"
    )


async def test_an_open_page_renews_the_registry_token_before_it_expires(
    person: User, provider: IdentityProvider, team: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(signin, "RENEW_EVERY", 0.1)
    store, record, token = await signed_in(person, provider)
    expiring = token.model_copy(update={"expires_at": datetime.now(UTC) + timedelta(seconds=5)})
    save(store, record, expiring)

    def renewed() -> RegistryToken | None:
        kept = saved(store)
        return kept[1] if kept and kept[1].access_token != token.access_token else None

    await eventually(lambda: renewed() is not None)  # no page was opened meanwhile
    fresh = renewed()
    assert fresh is not None
    assert fresh.fresh()
    assert await viewer_email(team, fresh.access_token.get_secret_value()) == "ada@example.com"


async def test_a_sign_in_the_provider_no_longer_renews_ends(
    person: User, provider: IdentityProvider
) -> None:
    store, record, token = await signed_in(person, provider)
    revoked = record.model_copy(update={"refresh_token": SecretStr("revoked-at-the-provider")})
    save(store, revoked, token.model_copy(update={"expires_at": datetime.now(UTC)}))

    await person.open("/")

    await person.should_see("Sign in to see your organization")
    assert SIGNED_IN not in storage_of(person)


async def test_signing_out_forgets_the_sign_in(person: User, provider: IdentityProvider) -> None:
    await sign_in(person, provider)

    signed_out = await person.http_client.get("/auth/signout")

    assert signed_out.status_code == 303
    await person.open("/")
    await person.should_see("Sign in to see your organization")
    assert saved(storage_of(person)) is None


async def test_a_new_organization_is_entered_and_another_switched_to_with_a_token_for_each(
    person: User, provider: IdentityProvider, team: str
) -> None:
    await sign_in(person, provider)
    await open_settings(person)

    create(person, "organization", "Research", "research")

    await person.should_see("Workspaces of Research", retries=50)
    assert await reached(team, registry_token(person)) == ["research"]

    person.find(marker="switch-ada").click()

    await person.should_see("Workspaces of ada (personal)", retries=50)
    assert await reached(team, registry_token(person)) == ["ada"]


async def reached(team: str, token: str) -> list[str]:
    """The organizations ``token`` reaches, by slug."""
    data = await ask(team, token, "{ organizations { slug } }")
    return [organization["slug"] for organization in data["organizations"]]


def test_stardag_gui_with_sign_in_serves_a_team_on_any_address(
    team: str, provider: IdentityProvider, hermetic_home: Path
) -> None:
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    command = ["gui", "--host", "0.0.0.0", "--port", str(port)]
    process = subprocess.Popen(
        [sys.executable, "-m", "stardag_core", *command],
        # Without pytest's variables: NiceGUI would take itself for a test's server. The
        # sign-in is configured as docker-compose.yml does, through the environment.
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")},
            "HOME": str(hermetic_home),
            "STARDAG_GUI_SIGN_IN": "true",
            "STARDAG_GUI_REGISTRY_URL": team,
            "STARDAG_GUI_PUBLIC_URL": public,
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        start = until_listening(f"{public}/auth/signin")
        page = httpx.get(f"{public}/settings")
    finally:
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=30)[0].decode()

    assert start.status_code == 303
    authorize = urlsplit(start.headers["location"])
    assert f"{authorize.scheme}://{authorize.netloc}" == provider.issuer
    assert parse_qs(authorize.query)["redirect_uri"] == [f"{public}/auth/callback"]
    assert "Sign in to see your organization" in page.text
    assert "Traceback" not in output


def until_listening(url: str, timeout: float = 30.0) -> httpx.Response:
    """The answer to GET ``url`` once something listens there."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return httpx.get(url)
        except httpx.TransportError:
            assert time.monotonic() < deadline, f"nothing listened at {url} within {timeout} s"
            time.sleep(0.1)


def test_without_sign_in_the_gui_refuses_an_address_others_can_reach() -> None:
    result = CliRunner().invoke(cli, ["gui", "--host", "0.0.0.0", "--port", str(free_port())])

    assert result.exit_code == 1
    assert "refusing to listen on '0.0.0.0'" in said(result.output)
    assert "run it with --sign-in" in said(result.output)


def test_sign_in_needs_a_registry_where_people_sign_in(tmp_path: Path) -> None:
    local = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'registry.db'}")
    with serving_settings(local) as url:
        result = CliRunner().invoke(cli, ["gui", "--sign-in", "--registry-url", url])
    missing = CliRunner().invoke(cli, ["gui", "--sign-in"])

    assert result.exit_code == 1
    assert "runs in local mode, where nobody signs in" in said(result.output)
    assert missing.exit_code == 1
    assert "--sign-in needs the registry's URL" in said(missing.output)


def said(output: str) -> str:
    """What the command line printed, without the terminal's line breaks."""
    return " ".join(output.split())
