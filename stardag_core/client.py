"""A synchronous GraphQL client of the configured registry, for the command line and the GUI.

``open_client()`` resolves the configuration (see ``stardag_core.profiles``) into a
``RegistryClient``: the registry's URL, the organization, the workspace's global id (a slug
is looked up once and cached) and a credential that renews itself::

    with open_client() as client:
        data = client.execute("query($w: ID!) { workspace(id: $w) { name } }",
                              w=client.workspace_id())

``configured_registry()`` is what a build reports to when no registry is passed: the
configured workspace's ``GraphQLRegistry``, after checking its target roots. Errors are
``RegistryError`` (the registry refused, or was unreachable) or ``ConfigError`` (nothing or
something wrong is configured), each with what to do; none shows a secret.
"""

import base64
import binascii
import hashlib
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from stardag_core.channel import Channel
from stardag_core.config import reload_settings
from stardag_core.credentials import ApiKey, Credential, CredentialStore, NoCredential, SignedIn
from stardag_core.exceptions import ConfigError, RegistryError
from stardag_core.login import renew
from stardag_core.profiles import RegistryConfig, resolve_registry, stardag_home
from stardag_core.registry_client import GraphQLRegistry
from stardag_core.workspace_cache import (
    RootChanges,
    WorkspaceCache,
    WorkspaceEntry,
    default_cache,
)

logger = logging.getLogger("stardag.client")

WORKSPACES = "{ organizations { slug workspaces { id slug name } } }"
TARGET_ROOTS = "query($w: ID!) { workspace(id: $w) { targetRoots { name uri } } }"


@dataclass(frozen=True)
class WorkspaceRef:
    """A workspace as listings show it."""

    id: str
    slug: str
    name: str
    organization: str


class RegistryClient:
    """GraphQL requests to one registry, as one caller, in the configured workspace."""

    def __init__(
        self,
        config: RegistryConfig,
        credential: Credential,
        cache: WorkspaceCache,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.config = config
        self.credential = credential
        self.cache = cache
        self._channel = Channel(config.url, credential.bearer, timeout=timeout, transport=transport)

    def __repr__(self) -> str:
        return f"<RegistryClient {self.config.describe()} as {self.credential!r}>"

    def __enter__(self) -> "RegistryClient":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection."""
        self._channel.close()

    def execute(self, document: str, **variables: Any) -> dict[str, Any]:
        """The data of ``document``; ``RegistryError`` with the registry's message otherwise."""
        return self._channel.execute(document, variables)

    def workspaces(self) -> list[WorkspaceRef]:
        """Every workspace the caller reaches, by organization and slug."""
        data = self.execute(WORKSPACES)
        return [
            WorkspaceRef(workspace["id"], workspace["slug"], workspace["name"], org["slug"])
            for org in data["organizations"]
            for workspace in org["workspaces"]
        ]

    def workspace_id(self) -> str:
        """The configured workspace's global id: given as one, cached, or looked up by slug
        (then cached)."""
        wanted = self.config.workspace
        if wanted is not None and _is_workspace_id(wanted):
            return wanted
        entry = self.cache.get(self.config)
        if entry is not None:
            return entry.workspace_id
        workspace = self._find_workspace(wanted)
        self.cache.put(self.config, WorkspaceEntry(workspace_id=workspace.id))
        return workspace.id

    def _find_workspace(self, slug: str | None) -> WorkspaceRef:
        reachable = self.workspaces()
        organization = self.config.organization
        matches = [
            workspace
            for workspace in reachable
            if (slug is None or workspace.slug == slug)
            and (organization is None or workspace.organization == organization)
        ]
        if len(matches) == 1:
            return matches[0]
        known = ", ".join(f"{w.organization}/{w.slug}" for w in reachable) or "none"
        if not matches:
            wanted = "/".join(part for part in (organization, slug) if part) or "any workspace"
            raise ConfigError(
                f"the registry at {self.config.url} has no workspace {wanted} that you reach "
                f"(reachable: {known}); fix the profile or STARDAG_WORKSPACE"
            )
        raise ConfigError(
            f"more than one workspace matches at {self.config.url} ({known}): set the "
            "workspace (and organization) in the profile, or STARDAG_WORKSPACE and "
            "STARDAG_ORGANIZATION"
        )

    def target_roots(self) -> dict[str, str]:
        """The workspace's target roots as the registry has them now (name → URL)."""
        data = self.execute(TARGET_ROOTS, w=self.workspace_id())
        if data["workspace"] is None:
            raise ConfigError(
                f"the workspace {self.config.workspace} is gone from {self.config.url} or you "
                "no longer reach it: fix the profile or STARDAG_WORKSPACE"
            )
        return {root["name"].lower(): root["uri"] for root in data["workspace"]["targetRoots"]}

    def sync_target_roots(self) -> RootChanges:
        """Take the workspace's target roots into the cache; what changed."""
        live = self.target_roots()
        entry = self.cache.get(self.config)
        changes = RootChanges.between(dict(entry.target_roots) if entry else {}, live)
        self.cache.synced(self.config, self.workspace_id(), live)
        reload_settings()
        return changes


def _is_workspace_id(value: str) -> bool:
    """Whether ``value`` is a workspace's global id (base64 of ``Workspace:<uuid>``)."""
    try:
        return base64.b64decode(value, validate=True).startswith(b"Workspace:")
    except (binascii.Error, ValueError):
        return False


def credential_for(config: RegistryConfig, store: CredentialStore) -> Credential:
    """The credential to use: ``STARDAG_API_KEY``, else a sign-in at the registry, else none."""
    if config.api_key is not None:
        return ApiKey(config.api_key)
    if store.login(config.url) is not None:
        return SignedIn(store, config.url, config.organization, renew)
    return NoCredential()


def open_client(
    config: RegistryConfig | None = None,
    *,
    environ: Mapping[str, str] = os.environ,
    transport: httpx.BaseTransport | None = None,
) -> RegistryClient:
    """A client of ``config``, by default the configured registry; ``ConfigError`` when none
    is configured."""
    config = config or resolve_registry(environ)
    if config is None:
        raise ConfigError(
            "no registry is configured: add one with `stardag registry add NAME --url URL` and "
            "a profile with `stardag profile add` (or `stardag auth login`), or set "
            "STARDAG_REGISTRY_URL"
        )
    home = stardag_home(environ)
    credential = credential_for(config, CredentialStore(home / "credentials"))
    return RegistryClient(config, credential, default_cache(home), transport=transport)


# One GraphQLRegistry per registry, workspace and kind of credential in a process: every
# build shares its outbox and its sending thread (two senders on one outbox would race).
_build_registries: dict[tuple[str, str, str], GraphQLRegistry] = {}
_build_registries_lock = threading.Lock()


def configured_registry(environ: Mapping[str, str] = os.environ) -> GraphQLRegistry | None:
    """The registry a build reports to when none is passed: the configured workspace's, or
    None when no registry is configured.

    The workspace's target roots are checked first: a root added since the last sync is
    taken (and used at once); a root changed or removed stops with a ``ConfigError`` that says
    to run ``stardag target-roots sync``. A registry that cannot be reached leaves the cached
    roots in force (the build's reports wait in the outbox).
    """
    config = resolve_registry(environ)
    if config is None:
        return None
    home = stardag_home(environ)
    with open_client(config, environ=environ) as client:
        try:
            live = client.target_roots()
        except RegistryError as error:
            entry = client.cache.get(config)
            if entry is None or entry.synced_at is None:
                workspace = f" {config.workspace!r}" if config.workspace else ""
                raise RegistryError(
                    f"the build cannot start offline, since the workspace{workspace} was never "
                    "synced here: run `stardag target-roots sync` once the registry is "
                    f"reachable. {error}"
                ) from None
            logger.warning("using the cached target roots: %s", error)
            workspace_id = entry.workspace_id
        else:
            entry = client.cache.get(config)
            changes = RootChanges.between(dict(entry.target_roots) if entry else {}, live)
            changes.check(config.workspace or client.workspace_id())
            workspace_id = client.workspace_id()
            if changes.added:
                logger.info("new target roots synced: %s", ", ".join(changes.added))
            if changes.added or entry is None or entry.synced_at is None:
                # The first sync too, of a workspace with no roots: builds may then start
                # offline, with the roots as they are now.
                client.cache.synced(config, workspace_id, live)
                reload_settings()
        credential = client.credential
    return _registry(config.url, workspace_id, credential, home)


def _registry(url: str, workspace_id: str, credential: Credential, home: Path) -> GraphQLRegistry:
    """The process's registry for this URL, workspace and kind of credential."""
    key = (url, workspace_id, type(credential).__name__)
    with _build_registries_lock:
        registry = _build_registries.get(key)
        if registry is None:
            digest = hashlib.sha256(f"{url}\n{workspace_id}".encode()).hexdigest()[:16]
            bearer: Any = None if isinstance(credential, NoCredential) else credential.bearer
            registry = GraphQLRegistry(
                url, workspace_id, credential=bearer, outbox=home / "outbox" / f"{digest}.db"
            )
            _build_registries[key] = registry
        return registry
