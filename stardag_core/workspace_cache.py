"""What stardag remembers of a workspace for offline reads: its global id and its target roots.

One small JSON file per configured registry, organization and workspace, under
``~/.stardag/cache/workspaces/``. ``stardag target-roots sync`` writes it, and so does a build
that finds a target root newly added to the workspace; reading settings only reads it.
"""

import hashlib
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from stardag_core.exceptions import ConfigError
from stardag_core.profiles import RegistryConfig

SYNC_HINT = "run `stardag target-roots sync` to accept the workspace's target roots"


class WorkspaceEntry(BaseModel):
    """A workspace as last seen: its global id and target roots (name → URL)."""

    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)

    workspace_id: str
    target_roots: dict[str, str] = Field(default_factory=dict)
    synced_at: datetime | None = None
    """When the target roots were last taken from the registry (None: never)."""


class WorkspaceCache:
    """The cached workspaces under one directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def __repr__(self) -> str:
        return f"WorkspaceCache({str(self.directory)!r})"

    def get(self, config: RegistryConfig) -> WorkspaceEntry | None:
        """The cached entry of the configured workspace, if any (a damaged file: none)."""
        try:
            return WorkspaceEntry.model_validate_json(self._path(config).read_bytes())
        except (OSError, ValidationError):
            return None

    def put(self, config: RegistryConfig, entry: WorkspaceEntry) -> None:
        """Replace the configured workspace's entry (atomically)."""
        path = self._path(config)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temporary.write_text(entry.model_dump_json(), encoding="utf-8")
        temporary.replace(path)

    def synced(self, config: RegistryConfig, workspace_id: str, roots: dict[str, str]) -> None:
        """Remember ``roots`` as the workspace's target roots, synced now."""
        entry = WorkspaceEntry(
            workspace_id=workspace_id, target_roots=roots, synced_at=datetime.now(UTC)
        )
        self.put(config, entry)

    def _path(self, config: RegistryConfig) -> Path:
        key = "\n".join((config.url, config.organization or "", config.workspace or ""))
        return self.directory / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.json"


@dataclass(frozen=True)
class RootChanges:
    """How the workspace's target roots differ from the cached ones."""

    added: dict[str, str]
    changed: dict[str, tuple[str, str]]
    """Name → (cached URL, the workspace's URL now)."""
    removed: dict[str, str]

    @classmethod
    def between(cls, cached: dict[str, str], live: dict[str, str]) -> "RootChanges":
        """The changes from ``cached`` to ``live``."""
        return cls(
            added={name: uri for name, uri in live.items() if name not in cached},
            changed={
                name: (cached[name], uri)
                for name, uri in live.items()
                if name in cached and cached[name] != uri
            },
            removed={name: uri for name, uri in cached.items() if name not in live},
        )

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed)

    def check(self, workspace: str) -> None:
        """``ConfigError`` when a cached root changed or went away: outputs already built may
        live at the old URL, so a person decides (adding a root is safe)."""
        if not (self.changed or self.removed):
            return
        problems = [
            f"{name!r} moved from {old} to {new}" for name, (old, new) in self.changed.items()
        ]
        problems += [f"{name!r} ({uri}) was removed" for name, uri in self.removed.items()]
        raise ConfigError(
            f"the target roots of workspace {workspace} changed since they were synced: "
            f"{'; '.join(problems)}. Outputs built before may be at the old location; {SYNC_HINT}"
        )


def default_cache(home: Path) -> WorkspaceCache:
    """The cache under the stardag home directory ``home``."""
    return WorkspaceCache(home / "cache" / "workspaces")


def cached_roots(cache: WorkspaceCache, config: RegistryConfig) -> dict[str, str]:
    """The configured workspace's target roots as last synced (none if never synced)."""
    entry = cache.get(config)
    return dict(entry.target_roots) if entry else {}
