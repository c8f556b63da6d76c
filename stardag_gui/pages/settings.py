"""The settings page: the person's invites and organizations, then the members, invites and
workspaces of the chosen workspace's organization, then that workspace's target roots and
API keys. Also the prompts a tab opens with: an organization to create when the caller
reaches none, and invites waiting for an answer.

Every change is a GraphQL mutation; the registry's refusal (a missing permission, a taken
slug) is shown as a notification and the page stays as it was. Whatever people typed is shown
as text, never as HTML.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from nicegui import app, ui

from stardag_core.exceptions import RegistryError
from stardag_gui.context import Gui
from stardag_gui.signin import SIGNOUT
from stardag_gui.style import show_time

ROLES = ("OWNER", "ADMIN", "MEMBER")
MANAGERS = ("OWNER", "ADMIN")
DEFERRED = "invites-answered-later"
"""The key, in ``app.storage.user``, of the invites a person chose to answer later."""

ACCOUNT = """
{
  viewer {
    email displayName
    memberships { organization { slug name } role }
    invites { id role expiresAt organization { slug name } }
  }
  organizations { slug name viewerRole }
}
"""
WORKSPACE = """
query($w: ID!) {
  workspace(id: $w) {
    id name slug archivedAt
    targetRoots { name uri }
    organization {
      id slug name viewerRole
      members { user { email displayName } role }
      workspaces { id slug name archivedAt }
    }
  }
}
"""
MANAGED = """
query($w: ID!) {
  workspace(id: $w) {
    apiKeys { name prefix createdAt lastUsedAt revokedAt }
    organization { invites { id email role expiresAt } }
  }
}
"""
ORGANIZATION_WORKSPACES = (
    "query($slug: String!) { organization(slug: $slug) { workspaces { id } } }"
)
INVITES = "{ viewer { invites { id role expiresAt organization { slug name } } } }"
CREATE_ORGANIZATION = (
    "mutation($slug: String!, $name: String!) { createOrganization(slug: $slug, name: $name) "
    "{ slug name } }"
)
ACCEPT_INVITE = "mutation($id: ID!) { acceptInvite(inviteId: $id) { slug name } }"
DECLINE_INVITE = "mutation($id: ID!) { declineInvite(inviteId: $id) }"
INVITE_MEMBER = (
    "mutation($o: ID!, $email: String!, $role: Role!) { inviteMember(organizationId: $o, "
    "email: $email, role: $role) { id } }"
)
REVOKE_INVITE = "mutation($id: ID!) { revokeInvite(inviteId: $id) }"
SET_ROLE = (
    "mutation($o: ID!, $email: String!, $role: Role!) { setMemberRole(organizationId: $o, "
    "email: $email, role: $role) { role } }"
)
REMOVE_MEMBER = (
    "mutation($o: ID!, $email: String!) { removeMember(organizationId: $o, email: $email) }"
)
CREATE_WORKSPACE = (
    "mutation($o: ID!, $slug: String!, $name: String!) { createWorkspace(organizationId: $o, "
    "slug: $slug, name: $name) { id } }"
)
ARCHIVE_WORKSPACE = "mutation($w: ID!) { archiveWorkspace(workspaceId: $w) { archivedAt } }"
RESTORE_WORKSPACE = "mutation($w: ID!) { restoreWorkspace(workspaceId: $w) { archivedAt } }"
RENAME_WORKSPACE = (
    "mutation($w: ID!, $name: String!) { renameWorkspace(workspaceId: $w, name: $name) { name } }"
)
SET_TARGET_ROOT = (
    "mutation($w: ID!, $name: String!, $uri: String!) { setTargetRoot(workspaceId: $w, "
    "name: $name, uri: $uri) { name } }"
)
REMOVE_TARGET_ROOT = (
    "mutation($w: ID!, $name: String!) { removeTargetRoot(workspaceId: $w, name: $name) }"
)
CREATE_API_KEY = (
    "mutation($w: ID!, $name: String!) { createApiKey(workspaceId: $w, name: $name) "
    "{ secret apiKey { prefix } } }"
)
REVOKE_API_KEY = (
    "mutation($w: ID!, $prefix: String!) { revokeApiKey(workspaceId: $w, prefix: $prefix) "
    "{ revokedAt } }"
)


async def settings_page(gui: Gui) -> None:
    """The settings of the person, their organization and the chosen workspace."""
    settings = Settings(gui, ui.element())
    settings.sections(await settings.read())


@dataclass(frozen=True)
class Snapshot:
    """What the page shows: the caller (``ACCOUNT``) and the chosen workspace, if any."""

    account: dict[str, Any]
    workspace: dict[str, Any] | None


class Settings:
    """The settings page: its sections, read afresh from the registry after every change, and
    ``overlay``, where dialogs and notifications live so that new sections do not close them."""

    def __init__(self, gui: Gui, overlay: ui.element) -> None:
        self.gui = gui
        self.overlay = overlay

    async def read(self) -> Snapshot | str:
        """Everything the page shows, as the registry has it now; what went wrong when the
        registry did not answer."""
        try:
            return Snapshot(await self.gui.query(ACCOUNT), await self.workspace())
        except RegistryError as error:
            return str(error)

    async def show_afresh(self) -> None:
        """Read everything again, then replace the sections at once (awaited: not awaited,
        NiceGUI refreshes in a task of its own, after what the caller shows next)."""
        await self.sections.refresh(await self.read())

    @ui.refreshable_method
    def sections(self, snapshot: Snapshot | str) -> None:
        """Every section of ``snapshot`` (or why there is none)."""
        if isinstance(snapshot, str):
            ui.label(f"The registry did not answer: {snapshot}").classes("text-negative")
            return
        ui.label("Settings").classes("text-h5")
        viewer = snapshot.account["viewer"]
        if viewer is not None:
            self.person(viewer)
        self.organizations(viewer, snapshot.account["organizations"])
        if snapshot.workspace is not None:
            self.organization(snapshot.workspace["organization"])
            self.workspace_settings(snapshot.workspace)

    async def workspace(self) -> dict[str, Any] | None:
        """The chosen workspace with its organization (and, for its managers, its API keys
        and the organization's invites); None when there is none."""
        if self.gui.workspace is None:
            return None
        data = await self.gui.query(WORKSPACE, w=self.gui.workspace_id)
        workspace: dict[str, Any] | None = data["workspace"]
        if workspace is not None and workspace["organization"]["viewerRole"] in MANAGERS:
            managed = (await self.gui.query(MANAGED, w=self.gui.workspace_id))["workspace"]
            workspace["apiKeys"] = managed["apiKeys"]
            workspace["organization"]["invites"] = managed["organization"]["invites"]
        return workspace

    async def act(self, done: str, document: str, **variables: Any) -> dict[str, Any] | None:
        """Send a mutation; on success say ``done`` and show the page afresh, on a refusal
        say why. The mutation's data, None when refused."""
        try:
            data = await self.gui.query(document, **variables)
        except RegistryError as error:
            with self.overlay:
                refusal(error)
            return None
        await self.show_afresh()
        with self.overlay:
            ui.notify(done, type="positive")
        return data

    def person(self, viewer: dict[str, Any]) -> None:
        """Who is signed in, and the invites waiting for their answer."""
        with section("You"):
            ui.label(f"{viewer['displayName']} <{viewer['email']}>").classes("viewer")
            if self.gui.account is not None:
                ui.link("Sign out", SIGNOUT).classes("sign-out")
            for invite in viewer["invites"]:
                with ui.row().classes("items-center gap-2"):
                    invitation(invite)
                    ui.button("Accept", on_click=lambda i=invite: self.accept(i)).mark(
                        f"accept-{invite['id']}"
                    )
                    ui.button("Decline", on_click=lambda i=invite: self.decline(i)).props(
                        "flat"
                    ).mark(f"decline-{invite['id']}")

    async def accept(self, invite: dict[str, Any]) -> None:
        """Join the organization of ``invite``."""
        name = invite["organization"]["name"]
        await self.act(f"You joined {name}", ACCEPT_INVITE, id=invite["id"])

    async def decline(self, invite: dict[str, Any]) -> None:
        """Turn ``invite`` down."""
        name = invite["organization"]["name"]
        await self.act(f"You declined the invite to {name}", DECLINE_INVITE, id=invite["id"])

    def organizations(self, viewer: dict[str, Any] | None, reached: list[dict[str, Any]]) -> None:
        """The caller's organizations (acting in another one, with sign-in), and a new one."""
        slugs = {organization["slug"] for organization in reached}
        memberships = (
            viewer["memberships"]
            if viewer is not None
            else [{"organization": o, "role": o["viewerRole"]} for o in reached]
        )
        with section("Organizations"):
            for membership in memberships:
                organization = membership["organization"]
                with ui.row().classes("items-center gap-4 organization"):
                    ui.label(organization["name"]).classes("font-medium")
                    ui.label(organization["slug"]).classes("text-grey-7")
                    ui.badge(membership["role"].lower())
                    if self.gui.account is not None and organization["slug"] not in slugs:
                        ui.button(
                            "Switch to it",
                            on_click=lambda slug=organization["slug"]: self.switch(slug),
                        ).props("flat dense").mark(f"switch-{organization['slug']}")
            creation_form("organization", ("Machine learning", "ml"), self.create_organization)

    async def create_organization(self, slug: str, name: str) -> None:
        """Create an organization owned by the caller, then show it."""
        if await self.act(f"Created {name}", CREATE_ORGANIZATION, slug=slug, name=name):
            await enter(self.gui, slug)

    async def switch(self, slug: str) -> None:
        """Act in organization ``slug`` (sign-in only: a token reaches one organization)."""
        await enter(self.gui, slug)

    def organization(self, organization: dict[str, Any]) -> None:
        """The members, invites and workspaces of ``organization``."""
        manager = organization["viewerRole"] in MANAGERS
        with section(f"Members of {organization['name']}"):
            for member in organization["members"]:
                self.member(organization, member, manager)
            if manager:
                self.invites(organization)
        with section(f"Workspaces of {organization['name']}"):
            for workspace in organization["workspaces"]:
                self.workspace_row(workspace, manager)
            if manager:
                creation_form(
                    "workspace",
                    ("Experiments", "experiments"),
                    lambda slug, name: self.create_workspace(organization, slug, name),
                )

    def member(self, organization: dict[str, Any], member: dict[str, Any], manager: bool) -> None:
        """One member: who, their role (to change), and removal."""
        email = member["user"]["email"]
        with ui.row().classes("items-center gap-4 member"):
            ui.label(member["user"]["displayName"]).classes("font-medium")
            ui.label(email).classes("text-grey-7")
            role = ui.select(list(ROLES), value=member["role"]).props("dense")
            role.mark(f"role-{email}")
            role.on_value_change(lambda event: self.change_role(organization, email, event.value))
            role.set_enabled(manager)
            if manager:
                ui.button(
                    icon="person_remove",
                    on_click=lambda: self.confirm(
                        f"Remove {email} from {organization['name']}?",
                        "Remove",
                        lambda: self.act(
                            f"Removed {email}", REMOVE_MEMBER, o=organization["id"], email=email
                        ),
                    ),
                ).props("flat round").tooltip("Remove").mark(f"remove-{email}")

    async def change_role(self, organization: dict[str, Any], email: str, role: str) -> None:
        """Give member ``email`` the role ``role``; a refused change shows the role as it is."""
        changed = await self.act(
            f"{email} is now {role.lower()}", SET_ROLE, o=organization["id"], email=email, role=role
        )
        if changed is None:
            await self.show_afresh()

    def invites(self, organization: dict[str, Any]) -> None:
        """The organization's pending invites (to withdraw), and a new one."""
        for invite in organization.get("invites", []):
            with ui.row().classes("items-center gap-4 pending-invite"):
                ui.label(invite["email"])
                ui.badge(invite["role"].lower())
                ui.label(f"invited, until {show_time(invite['expiresAt'])}").classes("text-grey-7")
                ui.button(
                    "Withdraw",
                    on_click=lambda i=invite: self.act(
                        f"Withdrew the invite to {i['email']}", REVOKE_INVITE, id=i["id"]
                    ),
                ).props("flat dense").mark(f"withdraw-{invite['email']}")
        with ui.row().classes("items-end gap-2"):
            email = ui.input("Email").mark("invite-email")
            role = ui.select(list(ROLES), value="MEMBER", label="Role").mark("invite-role")
            ui.button(
                "Invite",
                on_click=lambda: self.act(
                    f"Invited {email.value}",
                    INVITE_MEMBER,
                    o=organization["id"],
                    email=email.value.strip(),
                    role=role.value,
                ),
            ).mark("invite")

    def workspace_row(self, workspace: dict[str, Any], manager: bool) -> None:
        """One workspace of the organization, archived or not."""
        archived = workspace["archivedAt"] is not None
        with ui.row().classes("items-center gap-4 workspace"):
            ui.label(workspace["name"]).classes("font-medium")
            ui.label(workspace["slug"]).classes("text-grey-7")
            if archived:
                ui.badge("archived", color="grey")
            if manager:
                document, verb = (
                    (RESTORE_WORKSPACE, "Restore") if archived else (ARCHIVE_WORKSPACE, "Archive")
                )
                ui.button(
                    verb,
                    on_click=lambda: self.act(
                        f"{verb}d {workspace['name']}", document, w=workspace["id"]
                    ),
                ).props("flat dense").mark(f"{verb.lower()}-{workspace['slug']}")
                ui.button("Rename", on_click=lambda: self.rename(workspace)).props(
                    "flat dense"
                ).mark(f"rename-{workspace['slug']}")

    def rename(self, workspace: dict[str, Any]) -> None:
        """Ask for a new name of ``workspace`` (its slug stays) and give it."""
        with self.overlay, ui.dialog() as dialog, ui.card().classes("rename"):
            ui.label(f"Rename {workspace['name']} (its slug {workspace['slug']} stays)")
            name = ui.input("Name", value=workspace["name"]).mark("new-name")
            with ui.row().classes("justify-end w-full"):
                ui.button("Cancel", on_click=dialog.close).props("flat")

                async def renamed() -> None:
                    dialog.close()
                    await self.act(
                        f"Renamed {workspace['name']} to {name.value.strip()}",
                        RENAME_WORKSPACE,
                        w=workspace["id"],
                        name=name.value,
                    )

                ui.button("Rename", on_click=renamed).mark("confirm-rename")
        dialog.on("hide", dialog.delete)
        dialog.open()

    async def create_workspace(self, organization: dict[str, Any], slug: str, name: str) -> None:
        """Create a workspace in ``organization``, then show the GUI with it."""
        created = await self.act(
            f"Created {name}", CREATE_WORKSPACE, o=organization["id"], slug=slug, name=name
        )
        if created is not None:
            app.storage.user["workspace"] = created["createWorkspace"]["id"]
            ui.navigate.reload()

    def workspace_settings(self, workspace: dict[str, Any]) -> None:
        """The target roots and API keys of the chosen workspace."""
        manager = workspace["organization"]["viewerRole"] in MANAGERS
        with section(f"Target roots of {workspace['name']}"):
            for root in workspace["targetRoots"]:
                with ui.row().classes("items-center gap-4 target-root"):
                    ui.label(root["name"]).classes("font-medium")
                    ui.label(root["uri"]).classes("font-mono")
                    if manager:
                        ui.button(
                            icon="delete",
                            on_click=lambda name=root["name"]: self.act(
                                f"Removed the target root {name}",
                                REMOVE_TARGET_ROOT,
                                w=workspace["id"],
                                name=name,
                            ),
                        ).props("flat round").tooltip("Remove").mark(f"remove-root-{root['name']}")
            if manager:
                with ui.row().classes("items-end gap-2"):
                    name = ui.input("Name", value="default").mark("root-name")
                    uri = ui.input("URL", placeholder="s3://bucket/prefix").mark("root-uri")
                    ui.button(
                        "Save",
                        on_click=lambda: self.act(
                            f"The target root {name.value} is {uri.value}",
                            SET_TARGET_ROOT,
                            w=workspace["id"],
                            name=name.value.strip(),
                            uri=uri.value.strip(),
                        ),
                    ).mark("save-root")
        if manager:
            self.api_keys(workspace)

    def api_keys(self, workspace: dict[str, Any]) -> None:
        """The workspace's API keys (prefixes only), to revoke, and a new one."""
        with section(f"API keys of {workspace['name']}"):
            for key in workspace["apiKeys"]:
                with ui.row().classes("items-center gap-4 api-key"):
                    ui.label(key["name"]).classes("font-medium")
                    ui.label(f"{key['prefix']}…").classes("font-mono")
                    ui.label(f"created {show_time(key['createdAt'])}").classes("text-grey-7")
                    ui.label(f"last used {show_time(key['lastUsedAt'])}").classes("text-grey-7")
                    if key["revokedAt"] is not None:
                        ui.badge("revoked", color="grey")
                    else:
                        ui.button(
                            "Revoke",
                            on_click=lambda k=key: self.confirm(
                                f"Revoke the API key {k['name']} ({k['prefix']}…)? Whatever "
                                "uses it stops working at once.",
                                "Revoke",
                                lambda: self.act(
                                    f"Revoked {k['name']}",
                                    REVOKE_API_KEY,
                                    w=workspace["id"],
                                    prefix=k["prefix"],
                                ),
                            ),
                        ).props("flat dense color=negative").mark(f"revoke-{key['prefix']}")
            with ui.row().classes("items-end gap-2"):
                name = ui.input("Name", placeholder="ci").mark("key-name")
                ui.button(
                    "Create key", on_click=lambda: self.create_key(workspace, name.value.strip())
                ).mark("create-key")

    async def create_key(self, workspace: dict[str, Any], name: str) -> None:
        """Create an API key and show its secret, this once."""
        created = await self.act(
            f"Created the API key {name}", CREATE_API_KEY, w=workspace["id"], name=name
        )
        if created is not None:
            with self.overlay:
                show_secret(name, created["createApiKey"]["secret"])

    def confirm(self, question: str, verb: str, action: Callable[[], Awaitable[object]]) -> None:
        """Ask ``question``; ``action`` runs only once the person confirms with ``verb``."""
        with self.overlay, ui.dialog() as dialog, ui.card().classes("confirm"):
            ui.label(question)
            with ui.row().classes("justify-end w-full"):
                ui.button("Cancel", on_click=dialog.close).props("flat")

                async def confirmed() -> None:
                    dialog.close()
                    await action()

                ui.button(verb, on_click=confirmed).props("color=negative").mark("confirm")
        dialog.on("hide", dialog.delete)
        dialog.open()


async def prompts(gui: Gui) -> None:
    """What a tab asks as it opens: to create an organization when the caller reaches no
    workspace, and to answer the invites not put off until later."""
    if not gui.workspaces:
        organization_prompt(gui)
        return
    try:
        viewer = (await gui.query(INVITES))["viewer"]
    except RegistryError as error:
        ui.notify(f"Your invites could not be read: {error}", type="warning")
        return
    deferred = set(app.storage.user.get(DEFERRED, []))
    waiting = [i for i in (viewer or {}).get("invites", []) if i["id"] not in deferred]
    if waiting:
        invite_prompt(gui, waiting)


def organization_prompt(gui: Gui) -> None:
    """A dialog for a person who reaches no workspace yet: create an organization."""

    async def create(slug: str, name: str) -> None:
        try:
            await gui.query(CREATE_ORGANIZATION, slug=slug, name=name)
        except RegistryError as error:
            refusal(error)
            return
        dialog.delete()
        await enter(gui, slug)

    with ui.dialog().props("persistent") as dialog, ui.card().classes("organization-prompt"):
        ui.label("Welcome to stardag").classes("text-h6")
        ui.label(
            "You are not in any organization yet. Create one (it comes with a workspace named "
            "default), or ask an owner of an existing one to invite you."
        )
        creation_form("organization", ("Machine learning", "ml"), create)
    dialog.open()


def invite_prompt(gui: Gui, invites: list[dict[str, Any]]) -> None:
    """A dialog with the invites waiting for the person's answer: accept, decline, or later
    (which leaves them pending, listed in the settings, and not asked again)."""

    async def answer(invite: dict[str, Any], document: str, done: str) -> None:
        try:
            await gui.query(document, id=invite["id"])
        except RegistryError as error:
            refusal(error)
            return
        ui.notify(done, type="positive")
        rows.pop(invite["id"]).delete()
        if not rows:
            dialog.delete()

    def later() -> None:
        app.storage.user[DEFERRED] = sorted(
            {*app.storage.user.get(DEFERRED, []), *(i["id"] for i in invites)}
        )
        dialog.delete()

    rows: dict[str, ui.row] = {}
    with ui.dialog() as dialog, ui.card().classes("invite-prompt"):
        ui.label("You are invited").classes("text-h6")
        for invite in invites:
            name = invite["organization"]["name"]
            with ui.row().classes("items-center gap-2") as row:
                invitation(invite)
                ui.button(
                    "Accept",
                    on_click=lambda i=invite, n=name: answer(i, ACCEPT_INVITE, f"You joined {n}"),
                ).mark(f"prompt-accept-{invite['id']}")
                ui.button(
                    "Decline",
                    on_click=lambda i=invite, n=name: answer(
                        i, DECLINE_INVITE, f"You declined the invite to {n}"
                    ),
                ).props("flat").mark(f"prompt-decline-{invite['id']}")
            rows[invite["id"]] = row
        ui.button("Later", on_click=later).props("flat").mark("prompt-later")
    dialog.open()


async def enter(gui: Gui, slug: str) -> None:
    """Show the GUI on the first workspace of organization ``slug`` (with sign-in, after
    trading the person's token for one of that organization)."""
    try:
        if gui.account is not None:
            await gui.account.switch(slug)
        organization = (await gui.query(ORGANIZATION_WORKSPACES, slug=slug))["organization"]
    except RegistryError as error:
        refusal(error)
        return
    if organization and organization["workspaces"]:
        app.storage.user["workspace"] = organization["workspaces"][0]["id"]
    ui.navigate.reload()


def refusal(error: RegistryError) -> None:
    """Tell the person what the registry refused, and why."""
    ui.notify(str(error), type="negative", multi_line=True, classes="settings-error")


def section(title: str) -> ui.card:
    """A titled card of the settings page."""
    with ui.card().classes("w-full max-w-4xl gap-2") as card:
        ui.label(title).classes("text-h6")
    return card


def invitation(invite: dict[str, Any]) -> None:
    """What an invite to the person says."""
    organization = invite["organization"]
    ui.label(
        f"{organization['name']} ({organization['slug']}) invites you as "
        f"{invite['role'].lower()}, until {show_time(invite['expiresAt'])}"
    ).classes("invitation")


def creation_form(
    kind: str, example: tuple[str, str], create: Callable[[str, str], Awaitable[None]]
) -> None:
    """Name and slug fields (``example`` shows one of each) and a button that creates a
    ``kind`` (``organization`` or ``workspace``) with ``create(slug, name)``."""
    with ui.row().classes("items-end gap-2"):
        name = ui.input("Name", placeholder=example[0]).mark(f"{kind}-name")
        slug = ui.input("Slug", placeholder=example[1]).mark(f"{kind}-slug")
        ui.button(
            f"Create {kind}",
            on_click=lambda: create(slug.value.strip(), name.value.strip()),
        ).mark(f"create-{kind}")


def show_secret(name: str, secret: str) -> None:
    """A dialog with a new API key's secret: shown this once, never again."""
    with ui.dialog().props("persistent") as dialog, ui.card().classes("api-key-secret"):
        ui.label(f"The API key {name}").classes("text-h6")
        ui.label(
            "Copy the secret now: it is shown only this once. Set it as STARDAG_API_KEY where "
            "builds run."
        )
        ui.label(secret).classes("font-mono break-all secret")
        with ui.row().classes("justify-end w-full"):
            ui.button("Copy", icon="content_copy", on_click=lambda: copy(secret)).mark(
                "copy-secret"
            )
            ui.button("Done", on_click=dialog.delete).mark("secret-done")
    dialog.open()


def copy(text: str) -> None:
    """Put ``text`` on the person's clipboard."""
    ui.clipboard.write(text)
    ui.notify("Copied")
