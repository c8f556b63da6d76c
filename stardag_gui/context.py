"""What every page works with: the registry connection, the chosen workspace, and whether
the view follows the registry live or is paused."""

from dataclasses import dataclass, field
from typing import Any, Protocol

from nicegui.binding import BindableProperty

from stardag_core.async_client import AsyncRegistryClient
from stardag_core.channel import Credential


@dataclass(frozen=True)
class Connection:
    """The registry the GUI is a client of.

    ``credential`` is the GUI process's own (none in local mode, an API key or a sign-in from
    the CLI's configuration); with ``sign_in`` each person signs in through the registry's
    identity provider instead, and the GUI acts with their registry token. ``public_url`` is
    where browsers reach the GUI, for the provider's redirect back (None: the address each
    request came to).
    """

    url: str
    credential: Credential = field(default=None, repr=False)
    workspace_id: str | None = None
    sign_in: bool = False
    public_url: str | None = None


class Account(Protocol):
    """A signed-in person's session (with ``Connection.sign_in`` only)."""

    async def switch(self, organization: str) -> None:
        """Act in ``organization`` (a slug) from now on: a registry token reaches one
        organization."""


@dataclass(frozen=True)
class WorkspaceChoice:
    """A workspace the caller reaches, with its organization."""

    id: str
    slug: str
    name: str
    organization: str
    organization_name: str

    @property
    def label(self) -> str:
        """How the selector shows it."""
        return f"{self.organization_name} / {self.name}"


WORKSPACES = "{ organizations { slug name workspaces { id slug name } } }"


class Gui:
    """One browser tab's view of the registry."""

    live = BindableProperty()
    """Whether pages follow changes as they happen (a timer or subscription may check it)."""

    def __init__(
        self,
        client: AsyncRegistryClient,
        workspaces: list[WorkspaceChoice],
        workspace_id: str,
        account: Account | None = None,
    ) -> None:
        self.client = client
        self.workspaces = workspaces
        self.workspace_id = workspace_id
        self.account = account
        """The signed-in person's session; None without sign-in, where every organization
        of the caller is reached at once."""
        self.live = True

    @property
    def workspace(self) -> WorkspaceChoice | None:
        """The chosen workspace (None when the caller reaches none)."""
        return next((w for w in self.workspaces if w.id == self.workspace_id), None)

    async def query(self, document: str, **variables: Any) -> dict[str, Any]:
        """The data of ``document`` (``RegistryError`` when the registry refuses or is down)."""
        return await self.client.execute(document, **variables)


async def workspace_choices(client: AsyncRegistryClient) -> list[WorkspaceChoice]:
    """Every workspace the caller reaches, by organization then name."""
    data = await client.execute(WORKSPACES)
    return [
        WorkspaceChoice(w["id"], w["slug"], w["name"], org["slug"], org["name"])
        for org in data["organizations"]
        for w in org["workspaces"]
    ]
