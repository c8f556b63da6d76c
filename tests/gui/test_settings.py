"""The settings page: every change a person makes there reaches the registry (checked by asking
the registry again), and a refusal is a notification, not a crash.

Local mode has one person, so what needs several (roles, removals, invites to answer) runs on
a registry in server mode, the GUI acting with a registry token of one of a test
organization's members."""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from nicegui import ui
from nicegui.testing import User
from nicegui.testing.user_notify import UserNotify

from stardag_graphql.settings import Settings
from stardag_gui.context import Connection
from tests.graphql.conftest import AUDIENCE, server_mode_at, server_settings, serving_settings
from tests.graphql.tenants import ServerMode, Tenant, make_tenant
from tests.gui.conftest import Registry, eventually, gui_on
from tests.identity_provider import IdentityProvider

ORGANIZATION = """
query($slug: String!) {
  organization(slug: $slug) {
    viewerRole
    members { user { email } role }
    invites { email role }
    workspaces { slug name archivedAt }
  }
}
"""
WORKSPACE = """
query($w: ID!) {
  workspace(id: $w) { targetRoots { name uri } apiKeys { name prefix revokedAt } }
}
"""


def choice(user: User, marker: str) -> ui.select:
    """The one select on the page marked ``marker``."""
    (found,) = user.find(kind=ui.select, marker=marker).elements
    return found


def unique(prefix: str) -> str:
    """A slug no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def organization(registry: Registry, slug: str = "local") -> Any:
    """Organization ``slug`` as the registry has it now (None when there is none)."""
    return registry.query(ORGANIZATION, slug=slug)["organization"]


def local_organization(registry: Registry) -> Any:
    """The local organization as the registry has it now."""
    return organization(registry)


def local_workspace(registry: Registry) -> Any:
    """The demo workspace's target roots and API keys as the registry has them now."""
    return registry.query(WORKSPACE, w=registry.workspace_id)["workspace"]


async def open_settings(user: User) -> None:
    """Open the settings page and wait until the registry's answers are shown."""
    await user.open("/settings")
    await user.should_see(marker="organization-name", retries=50)


def create(user: User, kind: str, name: str, slug: str) -> None:
    """Fill in the form that creates a ``kind`` (organization or workspace) and send it."""
    user.find(marker=f"{kind}-name").type(name)
    user.find(marker=f"{kind}-slug").type(slug)
    user.find(marker=f"create-{kind}").click()


def create_api_key(user: User, name: str) -> None:
    """Ask for a new API key named ``name``."""
    user.find(marker="key-name").type(name)
    user.find(marker="create-key").click()


def api_key(registry: Registry, name: str) -> Any:
    """The demo workspace's API key ``name`` as the registry has it now."""
    (key,) = [k for k in local_workspace(registry)["apiKeys"] if k["name"] == name]
    return key


def send_invite(user: User, email: str, role: str) -> None:
    """Invite ``email`` as ``role`` through the members section."""
    user.find(marker="invite-email").type(email)
    choice(user, "invite-role").set_value(role)
    user.find(marker="invite").click()


async def told_refused(user: User) -> None:
    """Wait until a notification says the registry refused."""
    await eventually(lambda: any("refused" in message for message in user.notify.messages))


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    """Wait until the asynchronous ``check()`` holds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "it never happened"
        await asyncio.sleep(0.05)


async def test_creating_an_organization_makes_the_caller_its_owner_and_shows_it(
    user: User, registry: Registry
) -> None:
    slug = unique("ml")
    await open_settings(user)

    create(user, "organization", "Machine learning", slug)

    await eventually(lambda: organization(registry, slug) is not None)
    assert organization(registry, slug) == {
        "viewerRole": "OWNER",
        "members": [{"user": {"email": "local@localhost"}, "role": "OWNER"}],
        "invites": [],
        "workspaces": [{"slug": "default", "name": "Default", "archivedAt": None}],
    }
    await user.should_see("Workspaces of Machine learning", retries=50)


async def test_a_refusal_of_the_registry_is_a_notification(user: User, registry: Registry) -> None:
    await open_settings(user)

    create(user, "organization", "Taken", "local")

    await told_refused(user)
    assert organization(registry)["workspaces"][0]["slug"] == "default"
    await user.should_see("Members of Local")


async def test_creating_and_archiving_a_workspace(user: User, registry: Registry) -> None:
    slug = unique("exp")
    await open_settings(user)

    create(user, "workspace", "Experiments", slug)

    await user.should_see("Target roots of Experiments", retries=50)
    assert slug in {w["slug"] for w in local_organization(registry)["workspaces"]}
    user.find(marker=f"archive-{slug}").click()
    await user.should_see("Archived Experiments")

    workspaces = {w["slug"]: w for w in local_organization(registry)["workspaces"]}
    assert workspaces[slug]["archivedAt"] is not None
    await user.should_see(marker=f"restore-{slug}")


async def test_renaming_a_workspace_keeps_its_slug(user: User, registry: Registry) -> None:
    slug = unique("old")
    await open_settings(user)
    create(user, "workspace", "Old name", slug)
    await user.should_see("Target roots of Old name", retries=50)

    user.find(marker=f"rename-{slug}").click()
    user.find(marker="new-name").clear().type("  New name ")
    user.find(marker="confirm-rename").click()

    await user.should_see("Renamed Old name to New name")
    workspaces = {w["slug"]: w for w in local_organization(registry)["workspaces"]}
    assert workspaces[slug]["name"] == "New name"


async def test_a_workspace_name_cannot_be_empty(user: User, registry: Registry) -> None:
    await open_settings(user)

    user.find(marker="rename-default").click()
    user.find(marker="new-name").clear().type("   ")
    user.find(marker="confirm-rename").click()

    await told_refused(user)
    assert any("workspace name must be 1 to 200 characters" in m for m in user.notify.messages)
    workspaces = {w["slug"]: w for w in local_organization(registry)["workspaces"]}
    assert workspaces["default"]["name"] == "Default"


async def test_a_target_root_is_added_changed_and_removed(user: User, registry: Registry) -> None:
    def roots() -> dict[str, str]:
        return {r["name"]: r["uri"] for r in local_workspace(registry)["targetRoots"]}

    await open_settings(user)
    user.find(marker="root-name").clear().type("archive")
    user.find(marker="root-uri").type("memory://archive/v1")
    user.find(marker="save-root").click()
    await user.should_see("The target root archive is memory://archive/v1")
    assert roots()["archive"] == "memory://archive/v1"

    user.find(marker="root-name").clear().type("archive")
    user.find(marker="root-uri").type("memory://archive/v2")
    user.find(marker="save-root").click()
    await user.should_see("The target root archive is memory://archive/v2")
    assert roots()["archive"] == "memory://archive/v2"

    user.find(marker="remove-root-archive").click()
    await user.should_see("Removed the target root archive")
    assert "archive" not in roots()
    await user.should_not_see(marker="remove-root-archive")


async def test_an_api_key_secret_is_shown_once_and_the_key_can_be_revoked(
    user: User, registry: Registry
) -> None:
    name = unique("ci")
    await open_settings(user)

    create_api_key(user, name)
    await user.should_see(marker="copy-secret")
    (shown,) = [label.text for label in user.find(ui.label).elements if "secret" in label.classes]
    user.find(marker="copy-secret").click()
    user.find(marker="secret-done").click()

    key = api_key(registry, name)
    assert key["prefix"] in shown
    assert len(shown) > len(key["prefix"]) + 16
    assert works(registry, shown)
    await user.should_not_see(shown)
    await open_settings(user)
    await user.should_see(marker=f"revoke-{key['prefix']}")
    await user.should_not_see(shown)

    user.find(marker=f"revoke-{key['prefix']}").click()
    user.find(marker="confirm").click()
    await user.should_see(f"Revoked {name}")

    key = api_key(registry, name)
    assert key["revokedAt"] is not None
    assert not works(registry, shown)


async def test_revoking_an_api_key_waits_for_the_confirmation(
    user: User, registry: Registry
) -> None:
    name = unique("bot")
    await open_settings(user)
    create_api_key(user, name)
    await user.should_see(marker="secret-done")
    await user.should_see(f"Created the API key {name}")
    user.find(marker="secret-done").click()
    key = api_key(registry, name)
    await user.should_see(marker=f"revoke-{key['prefix']}")

    user.find(marker=f"revoke-{key['prefix']}").click()
    await user.should_see("stops working at once")
    user.find("Cancel").click()

    key = api_key(registry, name)
    assert key["revokedAt"] is None


async def test_inviting_by_email_then_withdrawing(user: User, registry: Registry) -> None:
    email = f"{unique('ada')}@example.com"
    await open_settings(user)

    send_invite(user, email, "ADMIN")
    await user.should_see(f"Invited {email}")
    assert {"email": email, "role": "ADMIN"} in local_organization(registry)["invites"]

    user.find(marker=f"withdraw-{email}").click()
    await user.should_see(f"Withdrew the invite to {email}")
    assert email not in {i["email"] for i in local_organization(registry)["invites"]}


async def test_the_page_shows_a_change_by_the_time_it_says_it_is_done(
    user: User, registry: Registry
) -> None:
    email = f"{unique('grace')}@example.com"
    await open_settings(user)
    listed_when_told: list[bool] = []

    class Told(UserNotify):
        """What the page says, and whether the invite was listed by the time it said so."""

        def __call__(self, message: str, **options: Any) -> None:
            if message == f"Invited {email}":
                try:
                    listed_when_told.append(bool(user.find(marker=f"withdraw-{email}").elements))
                except AssertionError:  # nothing with that marker on the page
                    listed_when_told.append(False)
            super().__call__(message, **options)

    user.notify = Told()
    send_invite(user, email, "MEMBER")
    await user.should_see(f"Invited {email}")

    assert listed_when_told == [True]


def works(registry: Registry, api_key: str) -> bool:
    """Whether the registry accepts ``api_key`` for a request."""
    response = httpx.post(
        f"{registry.url}/graphql",
        json={"query": "{ organizations { slug } }"},
        headers={"Authorization": f"Bearer {api_key}"},
    )
    return response.status_code == 200 and not response.json().get("errors")


# Several people: a registry in server mode.


@dataclass(frozen=True)
class Team:
    """A registry in server mode on loopback, and its settings (for its database and signer)."""

    url: str
    settings: Settings


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    """A registry in server mode (tokens are minted with its signer, as a sign-in would)."""
    directory = tmp_path_factory.mktemp("team")
    with IdentityProvider(audience=AUDIENCE) as provider:
        settings = server_settings(
            f"sqlite+aiosqlite:///{directory / 'registry.db'}", provider, directory / "key.pem"
        )
        with serving_settings(settings) as url:
            yield Team(url, settings)


@pytest.fixture
async def server(team: Team) -> AsyncIterator[ServerMode]:
    """The team registry with its signer and database, in this test's event loop."""
    async with server_mode_at(team.url, team.settings) as server:
        yield server


@contextlib.asynccontextmanager
async def gui_as(
    server: ServerMode, tenant: Tenant, who: str, caplog: pytest.LogCaptureFixture
) -> AsyncIterator[User]:
    """The GUI acting as ``who`` of ``tenant``."""
    async with gui_on(Connection(server.url, server.token(tenant, who)), caplog) as user:
        yield user


async def ask(server: ServerMode, credential: str, query: str, **variables: Any) -> dict[str, Any]:
    """The data of ``query`` asked as ``credential``; fails the test on an error."""
    answer = (await server.post(query, credential, **variables)).json()
    assert not answer.get("errors"), answer
    return dict(answer["data"])


async def organization_of(server: ServerMode, tenant: Tenant) -> dict[str, Any]:
    """The tenant's organization as its owner sees it."""
    data = await ask(
        server, server.token(tenant, "owner"), ORGANIZATION, slug=f"org-{tenant.label}"
    )
    return dict(data["organization"])


async def members(server: ServerMode, tenant: Tenant) -> dict[str, str]:
    """The tenant's members by email, with their roles, as its owner sees them."""
    organization = await organization_of(server, tenant)
    return {m["user"]["email"]: m["role"] for m in organization["members"]}


async def test_an_owner_changes_a_members_role(
    server: ServerMode, caplog: pytest.LogCaptureFixture
) -> None:
    tenant = await make_tenant(server.sessions)
    target = tenant.email("target")
    async with gui_as(server, tenant, "owner", caplog) as user:
        await open_settings(user)
        choice(user, f"role-{target}").set_value("ADMIN")

        async def admin() -> bool:
            return (await members(server, tenant))[target] == "ADMIN"

        await until(admin)
        await user.should_see(f"{target} is now admin")


async def test_an_owner_removes_a_member_after_confirming(
    server: ServerMode, caplog: pytest.LogCaptureFixture
) -> None:
    tenant = await make_tenant(server.sessions)
    target = tenant.email("target")
    async with gui_as(server, tenant, "owner", caplog) as user:
        await open_settings(user)
        user.find(marker=f"remove-{target}").click()
        await user.should_see(f"Remove {target} from Org {tenant.label}?")
        user.find(marker="confirm").click()
        await user.should_see(f"Removed {target}")

    assert target not in await members(server, tenant)


async def test_an_admin_who_may_not_make_owners_is_told_so(
    server: ServerMode, caplog: pytest.LogCaptureFixture
) -> None:
    tenant = await make_tenant(server.sessions)
    email = f"{unique('boss')}@example.com"
    async with gui_as(server, tenant, "admin", caplog) as user:
        await open_settings(user)
        send_invite(user, email, "OWNER")

        await told_refused(user)
        await user.should_see(marker="invite-email")
    invites = (await organization_of(server, tenant))["invites"]
    assert email not in {invited["email"] for invited in invites}


async def test_a_refused_role_change_shows_the_role_as_it_is(
    server: ServerMode, caplog: pytest.LogCaptureFixture
) -> None:
    tenant = await make_tenant(server.sessions)
    target = tenant.email("target")
    async with gui_as(server, tenant, "admin", caplog) as user:
        await open_settings(user)
        choice(user, f"role-{target}").set_value("OWNER")

        await told_refused(user)
        await eventually(lambda: choice(user, f"role-{target}").value == "MEMBER")
        assert (await members(server, tenant))[target] == "MEMBER"


async def test_a_member_sees_members_but_no_management(
    server: ServerMode, caplog: pytest.LogCaptureFixture
) -> None:
    tenant = await make_tenant(server.sessions)
    async with gui_as(server, tenant, "member", caplog) as user:
        await open_settings(user)
        await user.should_not_see(marker="invite-email")
        await user.should_not_see(marker="create-key")
        await user.should_not_see(marker=f"remove-{tenant.email('target')}")
        assert not choice(user, f"role-{tenant.email('target')}").enabled


async def invited(server: ServerMode) -> tuple[Tenant, Tenant, str]:
    """Two organizations, the owner of the second invited to the first as an admin; the
    invite's id."""
    host, guest = await make_tenant(server.sessions), await make_tenant(server.sessions)
    data = await ask(
        server,
        server.token(host, "owner"),
        "mutation($o: ID!, $e: String!) { inviteMember(organizationId: $o, email: $e, "
        "role: ADMIN) { id } }",
        o=host.organization,
        e=guest.email("owner"),
    )
    return host, guest, str(data["inviteMember"]["id"])


@contextlib.asynccontextmanager
async def prompted(
    server: ServerMode, guest: Tenant, caplog: pytest.LogCaptureFixture
) -> AsyncIterator[User]:
    """The GUI as the guest's owner, opened on its start page, asking about the invite."""
    async with gui_as(server, guest, "owner", caplog) as user:
        await user.open("/")
        await user.should_see("You are invited")
        yield user


async def pending(server: ServerMode, guest: Tenant) -> list[str]:
    """The ids of the invites waiting for the guest's answer."""
    data = await ask(server, server.token(guest, "owner"), "{ viewer { invites { id } } }")
    return [invite["id"] for invite in data["viewer"]["invites"]]


async def test_an_invite_accepted_at_the_prompt_makes_a_member(
    server: ServerMode, caplog: pytest.LogCaptureFixture
) -> None:
    host, guest, invite = await invited(server)
    async with prompted(server, guest, caplog) as user:
        await user.should_see(f"Org {host.label} (org-{host.label}) invites you as admin")

        user.find(marker=f"prompt-accept-{invite}").click()
        await user.should_see(f"You joined Org {host.label}")

    assert (await members(server, host))[guest.email("owner")] == "ADMIN"
    assert await pending(server, guest) == []


async def test_an_invite_declined_at_the_prompt_is_gone(
    server: ServerMode, caplog: pytest.LogCaptureFixture
) -> None:
    host, guest, invite = await invited(server)
    async with prompted(server, guest, caplog) as user:
        user.find(marker=f"prompt-decline-{invite}").click()
        await user.should_see(f"You declined the invite to Org {host.label}")

    assert guest.email("owner") not in await members(server, host)
    assert await pending(server, guest) == []


async def test_an_invite_answered_later_stays_pending_and_is_not_asked_again(
    server: ServerMode, caplog: pytest.LogCaptureFixture
) -> None:
    _, guest, invite = await invited(server)
    async with prompted(server, guest, caplog) as user:
        user.find(marker="prompt-later").click()
        await user.should_not_see("You are invited")
        assert await pending(server, guest) == [invite]

        await user.open("/")
        await user.should_see("Builds of")
        await user.should_not_see("You are invited")
    assert await pending(server, guest) == [invite]


async def test_an_invite_put_off_is_answered_in_the_settings(
    server: ServerMode, caplog: pytest.LogCaptureFixture
) -> None:
    host, guest, invite = await invited(server)
    async with gui_as(server, guest, "owner", caplog) as user:
        await open_settings(user)
        await user.should_see("You are invited")
        user.find(marker="prompt-later").click()

        user.find(marker=f"accept-{invite}").click()
        await user.should_see(f"You joined Org {host.label}")

    assert (await members(server, host))[guest.email("owner")] == "ADMIN"


async def test_a_person_in_no_organization_is_prompted_to_create_one(
    server: ServerMode, caplog: pytest.LogCaptureFixture
) -> None:
    tenant = await make_tenant(server.sessions)
    slug = unique("fresh")
    token = server.token(tenant, "removed")
    async with gui_as(server, tenant, "removed", caplog) as user:
        await user.open("/")
        await user.should_see("Welcome to stardag")

        create(user, "organization", "Fresh start", slug)

        async def owns() -> bool:
            async with httpx.AsyncClient(base_url=server.url) as http:
                answer = await http.post(
                    "/auth/token", json={"subject_token": token, "organization": slug}
                )
            return answer.status_code == 200

        await until(owns)


async def test_what_people_typed_is_shown_as_text(user: User, registry: Registry) -> None:
    hostile = '<img src=x onerror="alert(1)"><b>Evil</b> **corp**'
    slug = unique("evil")
    await open_settings(user)

    create(user, "organization", hostile, slug)

    await user.should_see(f"Workspaces of {hostile}", retries=50)
    assert organization(registry, slug)["workspaces"][0]["slug"] == "default"
    await user.should_not_see(kind=ui.html)
    await user.should_not_see(kind=ui.markdown)
