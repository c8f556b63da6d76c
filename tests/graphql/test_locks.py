"""Build locks: one holder at a time, expiry and takeover, fencing tokens that only grow."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from stardag_graphql.database import create_sessionmaker
from stardag_graphql.store.locks import (
    Lease,
    acquire_lock,
    acquire_locks,
    check_fencing_token,
    release_live_locks,
    release_lock,
    renew_lock,
)
from tests.graphql.conftest import make_workspace

KEY = "task:fa9b74b1-1cde-5676-8650-dbcf755a2699"
TTL = timedelta(seconds=30)
T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


async def acquire(
    session: AsyncSession, workspace: uuid.UUID, holder: str, now: datetime
) -> Lease | None:
    """Acquire `KEY` for `TTL` and commit."""
    lease = await acquire_lock(session, workspace, KEY, holder, TTL, now=now)
    await session.commit()
    return lease


async def test_a_held_lock_is_refused_until_it_expires(session: AsyncSession) -> None:
    workspace = await make_workspace(session)

    first = await acquire(session, workspace, "worker-a", T0)
    refused = await acquire(session, workspace, "worker-b", T0 + TTL - timedelta(microseconds=1))
    taken_over = await acquire(session, workspace, "worker-b", T0 + TTL)

    assert first == Lease(KEY, "worker-a", 1, T0 + TTL)
    assert refused is None
    assert taken_over == Lease(KEY, "worker-b", 2, T0 + 2 * TTL)


async def test_the_same_holder_acquiring_again_renews_with_the_same_token(
    session: AsyncSession,
) -> None:
    workspace = await make_workspace(session)
    await acquire(session, workspace, "worker-a", T0)

    again = await acquire(session, workspace, "worker-a", T0 + TTL / 2)
    after_expiry = await acquire(session, workspace, "worker-a", T0 + 2 * TTL)

    assert again == Lease(KEY, "worker-a", 1, T0 + TTL / 2 + TTL)
    assert after_expiry == Lease(KEY, "worker-a", 2, T0 + 3 * TTL)


async def test_renewal_needs_the_current_token_and_a_live_lease(session: AsyncSession) -> None:
    workspace = await make_workspace(session)
    await acquire(session, workspace, "worker-a", T0)

    renewed = await renew_lock(session, workspace, KEY, "worker-a", 1, TTL, now=T0 + TTL / 2)
    await session.commit()
    assert renewed == Lease(KEY, "worker-a", 1, T0 + TTL / 2 + TTL)
    assert await renew_lock(session, workspace, KEY, "worker-a", 0, TTL, now=T0) is None
    assert await renew_lock(session, workspace, KEY, "worker-b", 1, TTL, now=T0) is None
    assert await renew_lock(session, workspace, KEY, "worker-a", 1, TTL, now=T0 + 2 * TTL) is None

    await acquire(session, workspace, "worker-b", T0 + 2 * TTL)
    stale = await renew_lock(session, workspace, KEY, "worker-a", 1, TTL, now=T0 + 2 * TTL)
    assert stale is None


async def test_release_frees_the_lock_and_the_next_token_is_higher(
    session: AsyncSession,
) -> None:
    workspace = await make_workspace(session)
    await acquire(session, workspace, "worker-a", T0)

    assert not await release_lock(session, workspace, KEY, "worker-b", 1)
    assert not await release_lock(session, workspace, KEY, "worker-a", 2)
    assert await release_lock(session, workspace, KEY, "worker-a", 1)
    await session.commit()
    assert not await check_fencing_token(session, workspace, KEY, 1, now=T0)
    assert not await release_lock(session, workspace, KEY, "worker-a", 1)

    assert await acquire(session, workspace, "worker-b", T0) == Lease(KEY, "worker-b", 2, T0 + TTL)
    assert await acquire(session, workspace, "worker-a", T0) is None


async def test_a_fencing_token_is_void_after_expiry_and_takeover(session: AsyncSession) -> None:
    workspace = await make_workspace(session)
    await acquire(session, workspace, "worker-a", T0)

    assert await check_fencing_token(session, workspace, KEY, 1, now=T0 + TTL / 2)
    assert not await check_fencing_token(session, workspace, KEY, 1, now=T0 + TTL)

    await acquire(session, workspace, "worker-b", T0 + TTL)
    assert not await check_fencing_token(session, workspace, KEY, 1, now=T0 + TTL)
    assert await check_fencing_token(session, workspace, KEY, 2, now=T0 + TTL)


async def test_only_a_live_lease_releases_with_its_token(session: AsyncSession) -> None:
    workspace = await make_workspace(session)
    await acquire(session, workspace, "worker-a", T0)

    async def release(holder: str, token: int, now: datetime) -> bool:
        return KEY in await release_live_locks(session, workspace, [(KEY, token)], holder, now)

    lapsed = await release("worker-a", 1, now=T0 + TTL)
    wrong_token = await release("worker-a", 2, now=T0)
    wrong_holder = await release("worker-b", 1, now=T0)
    live = await release("worker-a", 1, now=T0 + TTL / 2)
    again = await release("worker-a", 1, now=T0 + TTL / 2)

    assert (lapsed, wrong_token, wrong_holder, live, again) == (False, False, False, True, False)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the plan is SQLite's
async def test_a_lease_update_seeks_its_keys_among_the_workspaces_locks(
    engine: AsyncEngine, session: AsyncSession
) -> None:
    workspace = await make_workspace(session)
    keys = [f"task:{index}" for index in range(3)]
    await acquire_locks(session, workspace, keys, "worker-a", TTL, now=T0)
    updates: list[tuple[str, Any]] = []

    def seen(_c: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.startswith("UPDATE locks"):
            updates.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    try:
        leases = [(key, 1) for key in keys[:2]]
        assert await release_live_locks(session, workspace, leases, "worker-a", T0) == {*keys[:2]}
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", seen)
    [(statement, parameters)] = updates
    connection = await session.connection()
    plan = await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)

    # Not every lock the workspace ever had (`workspace_id=?` alone): the keys asked for.
    assert any("(workspace_id=? AND key=?)" in step for *_, step in plan)


async def test_a_lease_from_the_real_clock_is_live_now(session: AsyncSession) -> None:
    workspace = await make_workspace(session)

    lease = await acquire_lock(session, workspace, KEY, "worker-a", TTL)
    await session.commit()

    assert lease is not None
    assert lease.expires_at.tzinfo == UTC
    assert await check_fencing_token(session, workspace, KEY, lease.fencing_token)


async def test_locks_are_scoped_by_workspace(session: AsyncSession) -> None:
    one = await make_workspace(session, "one")
    two = await make_workspace(session, "two")

    in_one = await acquire(session, one, "worker-a", T0)
    in_two = await acquire(session, two, "worker-b", T0)

    assert in_one == Lease(KEY, "worker-a", 1, T0 + TTL)
    assert in_two == Lease(KEY, "worker-b", 1, T0 + TTL)
    assert not await release_lock(session, one, KEY, "worker-b", 1)
    assert await check_fencing_token(session, two, KEY, 1, now=T0)


@pytest.mark.parametrize(
    ("key", "holder", "ttl", "message"),
    [
        ("", "worker-a", TTL, "key must be a non-empty string, got ''"),
        (KEY, "", TTL, "holder must be a non-empty string, got ''"),
        (KEY, "worker-a", timedelta(0), r"ttl must be positive, got datetime\.timedelta\(0\)"),
        (KEY, "worker-a", -TTL, "ttl must be positive"),
    ],
)
async def test_arguments_are_checked(
    session: AsyncSession, key: str, holder: str, ttl: timedelta, message: str
) -> None:
    workspace = await make_workspace(session)

    with pytest.raises(ValueError, match=message):
        await acquire_lock(session, workspace, key, holder, ttl, now=T0)
    with pytest.raises(ValueError, match=message):
        await renew_lock(session, workspace, key, holder, 1, ttl, now=T0)


async def test_a_naive_now_is_refused(session: AsyncSession) -> None:
    workspace = await make_workspace(session)

    with pytest.raises(ValueError, match="now must be timezone-aware"):
        await acquire_lock(session, workspace, KEY, "worker-a", TTL, now=T0.replace(tzinfo=None))


async def test_concurrent_acquirers_have_exactly_one_winner(
    engine: AsyncEngine, session: AsyncSession
) -> None:
    workspace = await make_workspace(session)
    sessions = create_sessionmaker(engine)
    contenders = 6
    barrier = asyncio.Barrier(contenders)

    async def contend(holder: str, now: datetime) -> Lease | None:
        async with sessions() as racer:
            await racer.connection()
            await barrier.wait()
            lease = await acquire_lock(racer, workspace, KEY, holder, TTL, now=now)
            await racer.commit()
            return lease

    for round_ in range(25):
        now = T0 + round_ * TTL
        leases = await asyncio.gather(
            *(contend(f"worker-{index}", now) for index in range(contenders))
        )
        winners = [lease for lease in leases if lease is not None]
        assert len(winners) == 1, f"round {round_}: {winners}"
        assert winners[0].fencing_token == round_ + 1
        assert await check_fencing_token(session, workspace, KEY, round_ + 1, now=now)
        await session.commit()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_release_waits_for_locked_rows_in_key_order(
    engine: AsyncEngine, session: AsyncSession
) -> None:
    """Acquirers lock their rows in key order; a worker freeing its leases must too, or a
    release holding a later key while waiting for an earlier one, and an acquirer holding
    that earlier one while waiting for the later, deadlock (seen with four workers)."""
    workspace = await make_workspace(session)
    first, second = "task:1", "task:2"
    leases = {}
    for key in (second, first):  # stored in this order: a scan of the table meets `second` first
        leases.update(await acquire_locks(session, workspace, [key], "worker-a", TTL))
        await session.commit()
    sessions = create_sessionmaker(engine)
    async with sessions() as blocker, sessions() as releaser, sessions() as acquirer:
        await blocker.execute(
            text("SELECT 1 FROM locks WHERE key = :key FOR UPDATE"), {"key": first}
        )
        # Whatever plan the release gets: a scan in storage order is what met the deadlock.
        await releaser.execute(text("SET LOCAL enable_indexscan = off"))
        await releaser.execute(text("SET LOCAL enable_bitmapscan = off"))
        pid = await releaser.scalar(text("SELECT pg_backend_pid()"))
        pairs = [(key, lease.fencing_token) for key, lease in sorted(leases.items())]
        releasing = asyncio.create_task(release_live_locks(releaser, workspace, pairs, "worker-a"))
        while not await session.scalar(
            text("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = :pid"),
            {"pid": pid},
        ):
            assert not releasing.done(), releasing
            await asyncio.sleep(0.01)

        # The release waits for `first` holding nothing: the acquirer gets `second`'s row at
        # once (and no lease: worker-a's is live), where it would wait on the release, which
        # waits on the blocker. The bound only turns that wait into a failure.
        acquiring = acquire_locks(acquirer, workspace, [second], "worker-b", TTL)
        try:
            refused = await asyncio.wait_for(acquiring, timeout=30)
            await acquirer.commit()
        finally:
            await blocker.commit()
            released = await releasing
            await releaser.commit()

    assert refused == {}
    assert released == {first, second}
