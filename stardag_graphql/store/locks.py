"""Build locks: leases with a TTL and a fencing token, so that a task is built once.

A lock is one row per (workspace, key) that outlives each lease. Every grant to a new
lease raises its `fencing_token` by one, so tokens are never reused, not even across a
release or an expiry; a worker presents its token when it completes, and a worker whose
lease lapsed and was taken over is refused. Acquisition is one conditional upsert, so two
concurrent acquirers can never both win, on SQLite and PostgreSQL alike.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import String, Update, and_, any_, bindparam, case, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import UpdateBase

from stardag_graphql.errors import InvalidInputError
from stardag_graphql.ids import ordered_id
from stardag_graphql.models import Lock, utcnow
from stardag_graphql.store.upsert import dialect_of, insert_per_dialect, table_of


@dataclass(frozen=True)
class Lease:
    """A granted lease: `holder` holds `key` with `fencing_token` until `expires_at`."""

    key: str
    holder: str
    fencing_token: int
    expires_at: datetime


async def acquire_lock(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    key: str,
    holder: str,
    ttl: timedelta,
    now: datetime | None = None,
) -> Lease | None:
    """Grant `key` to `holder` for `ttl` if it is free or expired; None while another holds it.

    A new lease gets the next fencing token; the same holder acquiring again while its
    lease is live renews it and keeps its token.
    """
    leases = await acquire_locks(session, workspace_id, [key], holder, ttl, now)
    return leases.get(key)


async def acquire_locks(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    keys: Sequence[str],
    holder: str,
    ttl: timedelta,
    now: datetime | None = None,
) -> dict[str, Lease]:
    """`acquire_lock` for many keys in one statement: the leases granted, by key (a key
    another holds is left out)."""
    _check_names(holder=holder)
    for key in keys:
        _check_names(key=key)
    _check_ttl(ttl)
    if not keys:
        return {}
    now = _now(now)
    rows = [
        {
            "id": ordered_id(),
            "workspace_id": workspace_id,
            "key": key,
            "holder": holder,
            "fencing_token": 1,
            "acquired_at": now,
            "expires_at": now + ttl,
        }
        for key in sorted(set(keys))  # one row per key; sorted, so writers lock in order
    ]
    result = await session.execute(_ACQUIRE[dialect_of(session)], rows)
    return {row.key: Lease(row.key, holder, row.fencing_token, row.expires_at) for row in result}


async def renew_lock(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    key: str,
    holder: str,
    fencing_token: int,
    ttl: timedelta,
    now: datetime | None = None,
) -> Lease | None:
    """Extend a live lease to `now + ttl`; None if the caller no longer holds it with that token."""
    _check_names(key=key, holder=holder)
    _check_ttl(ttl)
    now = _now(now)
    result = await session.execute(
        update(Lock)
        .where(
            Lock.workspace_id == workspace_id,
            Lock.key == key,
            Lock.holder == holder,
            Lock.fencing_token == fencing_token,
            Lock.expires_at > now,
        )
        .values(expires_at=now + ttl)
        .returning(Lock.expires_at)
        .execution_options(synchronize_session=False)
    )
    expires_at = result.scalar_one_or_none()
    if expires_at is None:
        return None
    return Lease(key, holder, fencing_token, expires_at)


async def release_lock(
    session: AsyncSession, workspace_id: uuid.UUID, key: str, holder: str, fencing_token: int
) -> bool:
    """Release the lock if the caller holds it with that token; returns whether it did."""
    _check_names(key=key)
    return key in await release_locks(session, workspace_id, [(key, fencing_token)], holder)


async def release_locks(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    leases: Sequence[tuple[str, int]],
    holder: str,
) -> set[str]:
    """`release_lock` for many `(key, fencing token)` leases in one statement: the keys
    released."""
    return await _update_leases(session, _RELEASE, workspace_id, leases, holder)


async def renew_locks(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    leases: Sequence[tuple[str, int]],
    holder: str,
    ttl: timedelta,
    now: datetime | None = None,
) -> set[str]:
    """`renew_lock` for many `(key, fencing token)` leases in one statement: the keys renewed."""
    _check_ttl(ttl)
    now = _now(now)
    return await _update_leases(
        session, _RENEW, workspace_id, leases, holder, now=now, renewed_until=now + ttl
    )


async def release_live_locks(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    leases: Sequence[tuple[str, int]],
    holder: str,
    now: datetime | None = None,
) -> set[str]:
    """Release the locks the caller holds with *live* leases of these `(key, fencing token)`;
    returns the keys released. The check and the release are one statement, so a lease that
    lapsed, or was taken over, can never be released (or its work recorded) by its former
    holder."""
    return await _update_leases(session, _RELEASE_LIVE, workspace_id, leases, holder, now=_now(now))


async def _update_leases(
    session: AsyncSession,
    statement: Update,
    workspace_id: uuid.UUID,
    leases: Sequence[tuple[str, int]],
    holder: str,
    **times: datetime,
) -> set[str]:
    """Run one of the lease updates below on the locks `holder` holds with these
    `(key, fencing token)` leases; returns the keys changed."""
    _check_names(holder=holder)
    if not leases:
        return set()
    keys = list({key for key, _ in leases})
    if dialect_of(session) == "postgresql":
        # Lock the rows first, in key order (the SELECT orders them), as acquisitions do
        # (they insert their keys sorted). The UPDATE takes rows in whatever order its plan
        # visits them: holding a later key while waiting for an earlier one that an acquirer
        # holds, which waits for that later key, it deadlocked (four workers, one registry).
        # SQLite has one writer.
        await session.execute(_LOCK_LEASE_ROWS, {"in_workspace": workspace_id, "keys": keys})
    parameters = {
        "in_workspace": workspace_id,
        "keys": keys,
        "held_by": holder,
        "leases": list(leases),
        **times,
    }
    result = await session.execute(statement, parameters)
    return set(result.scalars())


# The statements are built once: building them cost more Python time than running them.
_LOCKS = table_of(Lock)


def _acquire(statement: postgresql.Insert | sqlite.Insert) -> UpdateBase:
    """`statement` made the acquisition of a lock: a free or expired lock, or one the same
    holder holds (a renewal, which keeps its token), goes to the new row's holder."""
    new = statement.excluded
    now = new.acquired_at
    renewing = and_(_LOCKS.c.holder == new.holder, _LOCKS.c.expires_at > now)
    return statement.on_conflict_do_update(
        index_elements=["workspace_id", "key"],
        set_={
            "holder": new.holder,
            "fencing_token": case(
                (renewing, _LOCKS.c.fencing_token), else_=_LOCKS.c.fencing_token + 1
            ),
            "acquired_at": case((renewing, _LOCKS.c.acquired_at), else_=now),
            "expires_at": new.expires_at,
        },
        where=or_(
            _LOCKS.c.holder.is_(None), _LOCKS.c.expires_at <= now, _LOCKS.c.holder == new.holder
        ),
    ).returning(_LOCKS.c.key, _LOCKS.c.fencing_token, _LOCKS.c.expires_at)


_ACQUIRE = insert_per_dialect(_LOCKS, _acquire)


def _lease_update(values: dict[str, object], *, live: bool) -> Update:
    """Set `values` on the locks of the leases given, only live ones when `live`."""
    held = [
        _LOCKS.c.workspace_id == bindparam("in_workspace"),
        # The keys alone as well: an index seeks them (the workspace's key index), where the
        # pairs below are checked against every lock the workspace ever had.
        _LOCKS.c.key.in_(bindparam("keys", expanding=True)),
        _LOCKS.c.holder == bindparam("held_by"),
        tuple_(_LOCKS.c.key, _LOCKS.c.fencing_token).in_(bindparam("leases", expanding=True)),
    ]
    if live:
        held.append(_LOCKS.c.expires_at > bindparam("now", type_=_LOCKS.c.expires_at.type))
    return update(_LOCKS).where(*held).values(values).returning(_LOCKS.c.key)


# PostgreSQL only. Byte order ("C"), whatever the database's collation: the order of
# Python's `sorted`, which acquisitions insert in.
_LOCK_LEASE_ROWS = (
    select(_LOCKS.c.id)
    .where(
        _LOCKS.c.workspace_id == bindparam("in_workspace"),
        _LOCKS.c.key == any_(bindparam("keys", type_=ARRAY(String()))),
    )
    .order_by(_LOCKS.c.key.collate("C"))
    .with_for_update()
)
_RELEASE = _lease_update({"holder": None, "expires_at": None}, live=False)
_RELEASE_LIVE = _lease_update({"holder": None, "expires_at": None}, live=True)
_RENEW = _lease_update(
    {"expires_at": bindparam("renewed_until", type_=_LOCKS.c.expires_at.type)}, live=True
)


async def check_fencing_token(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    key: str,
    fencing_token: int,
    now: datetime | None = None,
) -> bool:
    """Whether `fencing_token` is the current token of `key` and its lease is still live."""
    _check_names(key=key)
    now = _now(now)
    found = await session.scalar(
        select(Lock.id).where(
            Lock.workspace_id == workspace_id,
            Lock.key == key,
            Lock.fencing_token == fencing_token,
            Lock.holder.is_not(None),
            Lock.expires_at > now,
        )
    )
    return found is not None


def _check_names(**names: str) -> None:
    for name, value in names.items():
        if not value:
            raise InvalidInputError(f"{name} must be a non-empty string, got {value!r}")


def _check_ttl(ttl: timedelta) -> None:
    if ttl <= timedelta(0):
        raise InvalidInputError(f"ttl must be positive, got {ttl!r}")


def _now(now: datetime | None) -> datetime:
    if now is None:
        return utcnow()
    if now.tzinfo is None:
        raise InvalidInputError(f"now must be timezone-aware, got {now!r}")
    return now


async def list_locks(session: AsyncSession, workspace_id: uuid.UUID) -> list[Lock]:
    """A workspace's locks that are held now, by key."""
    rows = await session.scalars(
        select(Lock)
        .where(
            Lock.workspace_id == workspace_id, Lock.holder.is_not(None), Lock.expires_at > utcnow()
        )
        .order_by(Lock.key)
    )
    return list(rows)
