"""Settings: read once from the configuration into a typed object, replaceable in a scope.

Target roots are named fsspec URLs; every task writes under one of them (``default`` unless
the task says otherwise). When a registry is configured (see ``stardag_core.profiles``), the
roots are the workspace's, as last synced; environment variables override them::

    STARDAG_TARGET_ROOTS__DEFAULT=s3://my-bucket/stardag
    STARDAG_TARGET_ROOTS__ARCHIVE=/mnt/archive/stardag

or in code, for a scope: ``with sd.use_settings(sd.Settings(target_roots={...})): ...``.
Without either, ``default`` is ``~/.stardag/target-roots/default``.
"""

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from stardag_core.exceptions import ConfigError
from stardag_core.profiles import resolve_registry, stardag_home
from stardag_core.workspace_cache import cached_roots, default_cache

DEFAULT_TARGET_ROOT = "default"
_TARGET_ROOT_PREFIX = "STARDAG_TARGET_ROOTS__"


def _default_root() -> str:
    return str(stardag_home() / "target-roots" / DEFAULT_TARGET_ROOT)


class Settings(BaseModel):
    """stardag's settings; ``Settings.from_environment()`` reads the ``STARDAG_`` variables."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    target_roots: dict[str, str] = Field(default_factory=dict, validate_default=True)
    """Target root name → fsspec URL. ``default`` is always present."""

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> Self:
        """Settings from ``STARDAG_TARGET_ROOTS__<NAME>=<url>`` variables; others are ignored."""
        return cls._with_roots({}, environ)

    @classmethod
    def configured(cls, environ: Mapping[str, str] = os.environ, cwd: Path | None = None) -> Self:
        """Settings as configured: the target roots of the configured registry's workspace
        (as last synced), overridden by ``STARDAG_TARGET_ROOTS__<NAME>`` variables."""
        registry = resolve_registry(environ, cwd)
        workspace_roots = (
            cached_roots(default_cache(stardag_home(environ)), registry) if registry else {}
        )
        return cls._with_roots(workspace_roots, environ)

    @classmethod
    def _with_roots(cls, base: Mapping[str, str], environ: Mapping[str, str]) -> Self:
        roots = {name.lower(): url for name, url in base.items()}
        roots.update(
            (key[len(_TARGET_ROOT_PREFIX) :].lower(), value)
            for key, value in environ.items()
            if key.upper().startswith(_TARGET_ROOT_PREFIX)
        )
        try:
            return cls(target_roots=roots)
        except ValidationError as error:
            raise ConfigError(
                f"invalid {_TARGET_ROOT_PREFIX}* environment variable: {error}"
            ) from error

    @field_validator("target_roots")
    @classmethod
    def _normalise_roots(cls, roots: dict[str, str]) -> dict[str, str]:
        normalised = {name.lower(): _normalise_url(url) for name, url in roots.items()}
        normalised.setdefault(DEFAULT_TARGET_ROOT, _default_root())
        return normalised

    def target_root(self, name: str) -> str:
        """The URL of the named target root, without a trailing slash."""
        try:
            return self.target_roots[name.lower()]
        except KeyError:
            known = ", ".join(sorted(self.target_roots))
            raise ConfigError(
                f"unknown target root {name!r} (configured: {known}); set "
                f"STARDAG_TARGET_ROOTS__{name.upper()}=<url> to configure it"
            ) from None


def _normalise_url(url: str) -> str:
    url = url.strip()
    if not url:
        raise ValueError("a target root URL must not be empty")
    if "://" not in url:
        url = str(Path(url).expanduser().absolute())
    return url.rstrip("/") or "/"


_scoped: ContextVar[Settings | None] = ContextVar("stardag_settings", default=None)


def get_settings() -> Settings:
    """The settings in force: the innermost ``use_settings`` scope, else the configured ones
    (read once, see ``reload_settings``)."""
    return _scoped.get() or _configured_settings()


def reload_settings() -> None:
    """Read the configuration again at the next ``get_settings()`` (after it changed)."""
    _configured_settings.cache_clear()


@contextmanager
def use_settings(settings: Settings) -> Iterator[Settings]:
    """Use ``settings`` inside the ``with`` block (in this thread or asyncio task)."""
    token = _scoped.set(settings)
    try:
        yield settings
    finally:
        _scoped.reset(token)


@cache
def _configured_settings() -> Settings:
    return Settings.configured()
