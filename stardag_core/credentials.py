"""Credentials: who stardag acts as at a registry, kept under ``~/.stardag/credentials/``.

- ``ApiKey``: a workspace API key (``STARDAG_API_KEY``), for CI and workers.
- ``SignedIn``: a person signed in with ``stardag auth login``. The identity provider's refresh
  token is kept; the registry's short-lived token is cached until shortly before it expires,
  then renewed (one renewal at a time, across threads and processes).
- ``NoCredential``: a registry in local mode needs none.

Files are the owner's only (0600, in a 0700 directory) and written atomically. No repr, log
line or error message shows a secret.
"""

import fcntl
import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from stardag_core.exceptions import ConfigError

M = TypeVar("M", bound=BaseModel)

EXPIRY_MARGIN = timedelta(seconds=60)
"""A cached registry token is used until this long before it expires."""


class Credential(Protocol):
    """Gives the ``Authorization: Bearer`` value of the next request (None: send none)."""

    def bearer(self) -> str | None:
        """The credential to send now, renewed first if it is about to expire."""
        ...


class LoginRecord(BaseModel):
    """A person's sign-in at a registry: the provider, its refresh token, who signed in."""

    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)

    registry_url: str
    issuer: str
    client_id: str
    token_endpoint: str
    scopes: str
    refresh_token: SecretStr | None
    email: str | None = None
    signed_in_at: datetime


class RegistryToken(BaseModel):
    """A registry token for one organization, and when it expires."""

    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)

    access_token: SecretStr
    expires_at: datetime
    organization: str

    def fresh(self, now: datetime | None = None) -> bool:
        """Whether the token may still be sent (it expires more than a minute from now)."""
        return self.expires_at - (now or datetime.now(UTC)) > EXPIRY_MARGIN


Renew = Callable[[LoginRecord, str | None], tuple[LoginRecord, RegistryToken]]
"""Renews a sign-in: a new registry token for an organization (None: the first), and the
record with the provider's rotated refresh token."""


class CredentialStore:
    """The credential files of one directory (``~/.stardag/credentials`` by default)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def __repr__(self) -> str:
        return f"CredentialStore({str(self.directory)!r})"

    def login(self, url: str) -> LoginRecord | None:
        """The sign-in at the registry ``url``, if there is one."""
        return self._read(self._path(url, "login"), LoginRecord)

    def save_login(self, record: LoginRecord) -> None:
        """Keep a sign-in (replacing the registry's previous one)."""
        self._write(self._path(record.registry_url, "login"), record)

    def token(self, url: str, organization: str | None) -> RegistryToken | None:
        """The cached registry token for ``organization`` (None: the first), if still fresh."""
        token = self._read(self._token_path(url, organization), RegistryToken)
        return token if token is not None and token.fresh() else None

    def save_token(self, url: str, organization: str | None, token: RegistryToken) -> None:
        """Cache a registry token until shortly before it expires."""
        self._write(self._token_path(url, organization), token)

    def forget(self, url: str) -> bool:
        """Remove the sign-in and the cached tokens of the registry ``url``; whether there
        was anything to remove."""
        prefix = _registry_key(url)
        removed = False
        if self.directory.is_dir():
            for path in self.directory.glob(f"{prefix}.*"):
                path.unlink(missing_ok=True)
                removed = removed or path.suffix == ".json"
        return removed

    @contextmanager
    def locked(self, url: str) -> Iterator[None]:
        """Hold the registry's credential lock (across processes) inside the block."""
        self._ensure_directory()
        path = self.directory / f"{_registry_key(url)}.lock"
        descriptor = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)

    def _path(self, url: str, kind: str) -> Path:
        return self.directory / f"{_registry_key(url)}.{kind}.json"

    def _token_path(self, url: str, organization: str | None) -> Path:
        digest = hashlib.sha256((organization or "").encode()).hexdigest()[:12]
        return self._path(url, f"token-{digest}")

    def _read(self, path: Path, model: type[M]) -> M | None:
        try:
            return model.model_validate_json(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValidationError):
            # A damaged file is as good as none: signing in again rewrites it.
            return None

    def _write(self, path: Path, model: BaseModel) -> None:
        self._ensure_directory()
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        descriptor = os.open(temporary, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            json.dump(_revealed(model), file)
        temporary.replace(path)

    def _ensure_directory(self) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)


def _revealed(model: BaseModel) -> dict[str, Any]:
    """The model's fields as JSON values, secrets included (for the credential files only)."""
    values = model.model_dump(mode="json")
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, SecretStr):
            values[name] = value.get_secret_value()
    return values


def _registry_key(url: str) -> str:
    """A file name prefix for the registry ``url``: readable host and port, and a digest."""
    parts = urlsplit(url)
    readable = f"{parts.hostname or 'registry'}_{parts.port or ''}".rstrip("_")
    return f"{readable}-{hashlib.sha256(url.encode()).hexdigest()[:12]}"


class NoCredential:
    """Sends no credential: a registry in local mode needs none."""

    def __repr__(self) -> str:
        return "NoCredential()"

    def bearer(self) -> str | None:
        """None: the request goes without ``Authorization``."""
        return None


class ApiKey:
    """A workspace API key (``sd_...``), shown nowhere."""

    def __init__(self, key: SecretStr) -> None:
        self._key = key

    def __repr__(self) -> str:
        return "ApiKey('sd_…')"

    def bearer(self) -> str:
        """The key."""
        return self._key.get_secret_value()


class SignedIn:
    """A person's sign-in at the registry ``url``, acting in ``organization`` (None: their
    first): sends the cached registry token, renewed through ``renew`` when it expires."""

    def __init__(
        self, store: CredentialStore, url: str, organization: str | None, renew: Renew
    ) -> None:
        self.store = store
        self.url = url
        self.organization = organization
        self._renew = renew
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SignedIn({self.url!r}, organization={self.organization!r})"

    def bearer(self) -> str:
        """The registry token, renewed first when it expires within a minute."""
        token = self.store.token(self.url, self.organization)
        if token is None:
            with self._lock, self.store.locked(self.url):
                # Another thread or process may have renewed it while this one waited.
                token = self.store.token(self.url, self.organization) or self._renewed()
        return token.access_token.get_secret_value()

    def refresh(self) -> RegistryToken:
        """Renew the registry token now, whether or not it is about to expire."""
        with self._lock, self.store.locked(self.url):
            return self._renewed()

    def _renewed(self) -> RegistryToken:
        record = self.store.login(self.url)
        if record is None or record.refresh_token is None:
            raise ConfigError(f"not signed in to the registry {self.url}: run `stardag auth login`")
        record, token = self._renew(record, self.organization)
        self.store.save_login(record)
        self.store.save_token(self.url, self.organization, token)
        return token
