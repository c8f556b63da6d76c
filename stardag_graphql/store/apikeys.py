"""Workspace API keys: random secrets stored as a SHA-256 hash behind a non-secret prefix.

A key reads `sd_<prefix>_<secret>`. The prefix (not secret) finds the row; the hash of the
whole key is compared in constant time. The secret has 256 bits of entropy, so a fast hash is
safe, and a check costs one indexed lookup and one SHA-256: microseconds, not the hundreds of
milliseconds of a password hash.
"""

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from stardag_graphql.errors import InvalidInputError, NotFoundError
from stardag_graphql.models import ApiKey, Role, Workspace, utcnow
from stardag_graphql.store.tenancy import Identity, Reach

KEY_PREFIX = "sd_"
PREFIX_LENGTH = 10
MAX_NAME_LENGTH = 200
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class NewApiKey:
    """A key just created: its row and its secret, which is shown this once and never stored."""

    row: ApiKey
    secret: str

    def __repr__(self) -> str:
        return f"NewApiKey(name={self.row.name!r}, prefix={self.row.prefix!r}, secret='***')"


def hash_key(key: str) -> str:
    """The stored form of a key: its SHA-256, in hex."""
    return hashlib.sha256(key.encode()).hexdigest()


async def create_api_key(
    session: AsyncSession, workspace_id: uuid.UUID, name: str, created_by: uuid.UUID | None
) -> NewApiKey:
    """A new key for the workspace, named `name`."""
    if not 1 <= len(name) <= MAX_NAME_LENGTH:
        raise InvalidInputError(f"name must be 1 to {MAX_NAME_LENGTH} characters, got {name!r}")
    prefix = secrets.token_hex(PREFIX_LENGTH // 2)
    key = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    row = ApiKey(
        workspace_id=workspace_id,
        name=name,
        prefix=prefix,
        key_hash=hash_key(key),
        created_by_id=created_by,
        created_at=utcnow(),
    )
    session.add(row)
    await session.flush()
    return NewApiKey(row, key)


async def revoke_api_key(session: AsyncSession, workspace_id: uuid.UUID, prefix: str) -> ApiKey:
    """Revoke the workspace's key with `prefix`: the next request with it is refused."""
    row = await session.scalar(
        select(ApiKey).where(ApiKey.prefix == prefix, ApiKey.workspace_id == workspace_id)
    )
    if row is None:
        raise NotFoundError(f"no API key with prefix {prefix!r} in this workspace")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        await session.flush()
    return row


async def verify_api_key(session: AsyncSession, key: str) -> ApiKey | None:
    """The live key row that `key` is the secret of, or None (unknown, malformed or revoked)."""
    prefix = _prefix(key)
    if prefix is None:
        return None
    row = await session.scalar(_KEY_BY_PREFIX, {"prefix": prefix})
    if row is None or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(row.key_hash, hash_key(key)):
        return None
    return row


# Built once: every request with a key runs them, and building a statement cost more than
# running it.
_KEY_BY_PREFIX = select(ApiKey).where(ApiKey.prefix == bindparam("prefix"))
_KEY_WORKSPACE = select(Workspace.organization_id, Workspace.archived_at).where(
    Workspace.id == bindparam("id")
)


async def mark_used(session: AsyncSession, key_id: uuid.UUID) -> None:
    """Record that the key was used now."""
    await session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id)
        .values(last_used_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def _prefix(key: str) -> str | None:
    if not key.startswith(KEY_PREFIX):
        return None
    prefix, sep, secret = key[len(KEY_PREFIX) :].partition("_")
    if not sep or len(prefix) != PREFIX_LENGTH or not secret:
        return None
    return prefix


@dataclass(frozen=True)
class KeyIdentity:
    """The identity a request with an API key acts as, and whether to record the key's use
    (`mark_used`): at most once a minute per key, so that reads stay reads."""

    identity: Identity
    key_id: uuid.UUID
    record_use: bool


async def api_key_identity(session: AsyncSession, key: str) -> KeyIdentity | None:
    """The identity a request with `key` acts as, or None if the key is not valid."""
    row = await verify_api_key(session, key)
    if row is None:
        return None
    workspace = (await session.execute(_KEY_WORKSPACE, {"id": row.workspace_id})).first()
    if workspace is None:
        return None
    organization, archived_at = workspace
    identity = Identity(
        row.created_by_id,
        {organization: Role.MEMBER},
        api_key_workspace=row.workspace_id,
        workspaces={row.workspace_id: Reach(organization, archived_at is not None)},
    )
    last_used = row.last_used_at
    return KeyIdentity(
        identity, row.id, last_used is None or utcnow() - last_used > LAST_USED_RESOLUTION
    )
