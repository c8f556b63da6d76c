"""Profiles: which registry, organization and workspace stardag works with, and why.

Configuration lives in TOML files: the user's ``~/.stardag/config.toml`` (``$STARDAG_HOME``
moves the whole directory) and a project's ``.stardag/config.toml``, the nearest one in the
working directory or a parent. The project's entries win over the user's::

    [registry.central]
    url = "https://stardag.example.com"

    [profile.prod]
    registry = "central"
    organization = "acme"
    workspace = "production"

    [default]
    profile = "prod"

Environment variables win over both: ``STARDAG_PROFILE`` picks a profile, and
``STARDAG_REGISTRY_URL``, ``STARDAG_ORGANIZATION`` and ``STARDAG_WORKSPACE`` set (or override)
the registry, the organization and the workspace. ``STARDAG_API_KEY`` is the credential of a
worker; with the URL and the workspace it needs no file at all.
"""

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from stardag_core.exceptions import ConfigError

CONFIG_FILE = "config.toml"
PROJECT_DIRECTORY = ".stardag"
HOME_VARIABLE = "STARDAG_HOME"
PROFILE_VARIABLE = "STARDAG_PROFILE"
URL_VARIABLE = "STARDAG_REGISTRY_URL"
ORGANIZATION_VARIABLE = "STARDAG_ORGANIZATION"
WORKSPACE_VARIABLE = "STARDAG_WORKSPACE"
API_KEY_VARIABLE = "STARDAG_API_KEY"

Scope = Literal["project", "user"]
T = TypeVar("T")


def stardag_home(environ: Mapping[str, str] = os.environ) -> Path:
    """The directory of the user's configuration, credentials and caches: ``$STARDAG_HOME``,
    else ``~/.stardag``."""
    configured = environ.get(HOME_VARIABLE)
    return Path(configured).expanduser() if configured else Path.home() / ".stardag"


class RegistryEntry(BaseModel):
    """A registry by name: where it answers."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    url: str

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        return registry_url(url)


class Profile(BaseModel):
    """A named context: a registry (by name), an organization and a workspace (by slug)."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    registry: str
    organization: str | None = None
    workspace: str | None = None


class DefaultSection(BaseModel):
    """The ``[default]`` table: the profile in use when ``STARDAG_PROFILE`` is not set."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    profile: str | None = None


class ConfigFile(BaseModel):
    """The contents of one ``config.toml``."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    registry: dict[str, RegistryEntry] = Field(default_factory=dict)
    profile: dict[str, Profile] = Field(default_factory=dict)
    default: DefaultSection = Field(default_factory=DefaultSection)

    @classmethod
    def read(cls, path: Path) -> "ConfigFile":
        """The file at ``path`` (empty when it does not exist); ``ConfigError`` when it is not
        valid TOML or holds something unknown."""
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return cls()
        except OSError as error:
            raise ConfigError(f"cannot read the stardag configuration {path}: {error}") from error
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(
                f"{path} is not valid TOML ({error}): fix the file or delete it, then run "
                "`stardag profile list` to check"
            ) from error
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in problem['loc'])}: {problem['msg']}"
                for problem in error.errors()
            )
            raise ConfigError(
                f"{path} is not a valid stardag configuration ({problems}); the tables are "
                "[registry.<name>] (url), [profile.<name>] (registry, organization, workspace) "
                "and [default] (profile)"
            ) from error


def registry_url(url: str) -> str:
    """``url`` checked as a registry's address (http or https, with a host), without a
    trailing slash; ``ValueError`` otherwise."""
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"{url!r} is not a registry URL: give http(s)://host[:port], e.g. http://127.0.0.1:8000"
        )
    return url


@dataclass(frozen=True)
class Named(Generic[T]):
    """A registry or a profile, with its name and the file that defines it."""

    name: str
    value: T
    path: Path
    scope: Scope


@dataclass(frozen=True)
class ActiveProfile:
    """The profile in use, and why it is the one."""

    profile: Named[Profile]
    reason: str


@dataclass(frozen=True)
class Configuration:
    """The user's and the project's configuration files, read together."""

    user_path: Path
    user: ConfigFile
    project_path: Path | None
    project: ConfigFile

    @classmethod
    def load(
        cls, environ: Mapping[str, str] = os.environ, cwd: Path | None = None
    ) -> "Configuration":
        """Read the user file and the nearest project file above ``cwd``."""
        home = stardag_home(environ)
        user_path = home / CONFIG_FILE
        project_path = find_project_config(cwd or Path.cwd(), home)
        return cls(
            user_path=user_path,
            user=ConfigFile.read(user_path),
            project_path=project_path,
            project=ConfigFile.read(project_path) if project_path else ConfigFile(),
        )

    def _files(self) -> list[tuple[Path, ConfigFile, Scope]]:
        """The files in order of precedence, highest first."""
        files: list[tuple[Path, ConfigFile, Scope]] = []
        if self.project_path is not None:
            files.append((self.project_path, self.project, "project"))
        files.append((self.user_path, self.user, "user"))
        return files

    def registries(self) -> dict[str, Named[RegistryEntry]]:
        """Every registry by name; a project's entry hides the user's of the same name."""
        found: dict[str, Named[RegistryEntry]] = {}
        for path, file, scope in self._files():
            for name, entry in file.registry.items():
                found.setdefault(name, Named(name, entry, path, scope))
        return dict(sorted(found.items()))

    def profiles(self) -> dict[str, Named[Profile]]:
        """Every profile by name; a project's profile hides the user's of the same name."""
        found: dict[str, Named[Profile]] = {}
        for path, file, scope in self._files():
            for name, profile in file.profile.items():
                found.setdefault(name, Named(name, profile, path, scope))
        return dict(sorted(found.items()))

    def active_profile(self, environ: Mapping[str, str] = os.environ) -> ActiveProfile | None:
        """The profile in use: ``STARDAG_PROFILE``, else the project's default, else the
        user's; ``ConfigError`` when the one named does not exist."""
        profiles = self.profiles()
        chosen = environ.get(PROFILE_VARIABLE)
        if chosen:
            return ActiveProfile(
                self._profile(chosen, profiles, f"${PROFILE_VARIABLE}"),
                f"{PROFILE_VARIABLE}={chosen} is set",
            )
        for path, file, scope in self._files():
            if file.default.profile is not None:
                where = f"[default] profile in {path}"
                return ActiveProfile(
                    self._profile(file.default.profile, profiles, where),
                    f"it is the default of the {scope} configuration {path}",
                )
        return None

    def _profile(
        self, name: str, profiles: dict[str, Named[Profile]], named_by: str
    ) -> Named[Profile]:
        if name in profiles:
            return profiles[name]
        known = ", ".join(profiles) or "none yet"
        raise ConfigError(
            f"unknown profile {name!r} (named by {named_by}); known profiles: {known}. Create it "
            f"with `stardag profile add {name} --registry NAME --organization SLUG --workspace "
            "SLUG`, or pick a known one with `stardag profile use NAME`"
        )

    def registry(self, name: str, wanted_by: str) -> Named[RegistryEntry]:
        """The registry ``name``; ``ConfigError`` naming who wanted it when it is unknown."""
        registries = self.registries()
        if name in registries:
            return registries[name]
        known = ", ".join(registries) or "none yet"
        raise ConfigError(
            f"unknown registry {name!r} (used by {wanted_by}); known registries: {known}. Add "
            f"it with `stardag registry add {name} --url URL`"
        )

    def resolve(self, environ: Mapping[str, str] = os.environ) -> "RegistryConfig | None":
        """Where builds report and commands ask: environment variables over the active
        profile; None when no registry is configured."""
        active = self.active_profile(environ)
        profile = active.profile.value if active else None
        url = environ.get(URL_VARIABLE) or None
        registry_name: str | None = None
        if url is not None:
            try:
                url = registry_url(url)
            except ValueError as error:
                raise ConfigError(f"{URL_VARIABLE}: {error}") from None
            registry_name = next(
                (name for name, entry in self.registries().items() if entry.value.url == url),
                None,
            )
        elif active is not None and profile is not None:
            wanted_by = f"profile {active.profile.name!r} in {active.profile.path}"
            registry_name = profile.registry
            url = self.registry(profile.registry, wanted_by).value.url
        api_key = environ.get(API_KEY_VARIABLE) or None
        organization = environ.get(ORGANIZATION_VARIABLE) or (
            profile.organization if profile else None
        )
        workspace = environ.get(WORKSPACE_VARIABLE) or (profile.workspace if profile else None)
        if url is None:
            stray = [
                name
                for name in (API_KEY_VARIABLE, WORKSPACE_VARIABLE, ORGANIZATION_VARIABLE)
                if environ.get(name)
            ]
            if stray:
                raise ConfigError(
                    f"{', '.join(stray)} set, but no registry: set {URL_VARIABLE} too, or pick "
                    f"a profile with {PROFILE_VARIABLE} or `stardag profile use NAME`"
                )
            return None
        return RegistryConfig(
            url=url,
            registry=registry_name,
            organization=organization or None,
            workspace=workspace or None,
            profile=active.profile.name if active else None,
            reason=active.reason if active else f"{URL_VARIABLE} is set",
            api_key=SecretStr(api_key) if api_key else None,
        )


@dataclass(frozen=True)
class RegistryConfig:
    """The registry stardag works with: its URL, the organization and workspace (slugs, or a
    workspace's global id), the profile they came from and why, and an API key if one is set
    (never shown)."""

    url: str
    registry: str | None
    organization: str | None
    workspace: str | None
    profile: str | None
    reason: str
    api_key: SecretStr | None = None

    def describe(self) -> str:
        """One line for people: profile, registry, organization and workspace."""
        where = "/".join(part for part in (self.organization, self.workspace) if part)
        registry = f"{self.registry} ({self.url})" if self.registry else self.url
        profile = f"profile {self.profile!r}, " if self.profile else ""
        return f"{profile}registry {registry}" + (f", workspace {where}" if where else "")


def find_project_config(start: Path, home: Path) -> Path | None:
    """The nearest ``.stardag/config.toml`` in ``start`` or a parent (not the user's own)."""
    home = home.expanduser().absolute()
    for directory in (start.absolute(), *start.absolute().parents):
        candidate = directory / PROJECT_DIRECTORY
        if candidate == home:
            continue
        if (candidate / CONFIG_FILE).is_file():
            return candidate / CONFIG_FILE
    return None


def resolve_registry(
    environ: Mapping[str, str] = os.environ, cwd: Path | None = None
) -> RegistryConfig | None:
    """The configured registry (environment, project file, user file), or None."""
    return Configuration.load(environ, cwd).resolve(environ)
