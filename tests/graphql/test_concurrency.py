"""Many writers at once: processes sharing one SQLite file, and concurrent requests."""

import asyncio
import multiprocessing
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select
from starlette.datastructures import Headers

from stardag_graphql.authentication import Authenticator
from stardag_graphql.database import create_engine, create_sessionmaker, transaction
from stardag_graphql.migrations import ensure_schema
from stardag_graphql.models import ApiKey, Event, EventKind, Task, TaskStatus
from stardag_graphql.ratelimit import RateLimiter
from stardag_graphql.settings import Settings
from stardag_graphql.store.apikeys import create_api_key
from stardag_graphql.store.tasks import EventRecord, TaskRegistration, record_events, register_tasks
from stardag_graphql.store.tenancy import ensure_local_identity, workspace_ids
from tests.graphql.conftest import REGISTER, Api
from tests.graphql.test_api import task

WRITERS = 8
ROUNDS = 10


def write(database_url: str, writer: int) -> None:
    """One writer process: register tasks and record their events, a transaction per round."""
    asyncio.run(_write(database_url, writer))


async def _write(database_url: str, writer: int) -> None:
    engine = create_engine(Settings(database_url=database_url))
    sessions = create_sessionmaker(engine)
    try:
        async with sessions() as session:
            identity = await ensure_local_identity(session)
            (workspace,) = await workspace_ids(session, identity)
        for round_ in range(ROUNDS):
            task_id = f"w{writer}-r{round_}"
            async with sessions() as session, session.begin():
                await register_tasks(
                    session,
                    workspace,
                    [TaskRegistration(task_id, "step"), TaskRegistration("shared", "step")],
                )
            async with sessions() as session, session.begin():
                await record_events(
                    session,
                    workspace,
                    [
                        EventRecord(
                            f"{task_id}-done",
                            EventKind.TASK_COMPLETED,
                            datetime.now(UTC),
                            task_id=task_id,
                        )
                    ],
                )
    finally:
        await engine.dispose()


async def test_eight_processes_write_one_sqlite_file_without_locking_errors(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'registry.db'}"
    await ensure_schema(Settings(database_url=url))
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=write, args=(url, n)) for n in range(WRITERS)]

    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)

    assert [process.exitcode for process in processes] == [0] * WRITERS
    engine = create_engine(Settings(database_url=url))
    try:
        async with engine.connect() as connection:
            tasks = await connection.scalar(select(func.count()).select_from(Task))
            events = await connection.scalar(select(func.count()).select_from(Event))
            completed = await connection.scalar(
                select(func.count()).where(Task.status == TaskStatus.COMPLETED)
            )
    finally:
        await engine.dispose()
    assert tasks == WRITERS * ROUNDS + 1
    assert events == completed == WRITERS * ROUNDS


async def test_writers_sharing_tasks_in_any_order_do_not_deadlock(database_url: str) -> None:
    """Workers register the same tasks and record events for each other's tasks (a worker
    records a task built elsewhere as complete), each in its own order, all at once."""
    settings = Settings(database_url=database_url)
    engine = create_engine(settings)
    sessions = create_sessionmaker(engine)
    task_ids = [f"t{index:03}" for index in range(60)]
    registrations = [
        TaskRegistration(task_id, "step", dependencies=task_ids[max(0, index - 3) : index])
        for index, task_id in enumerate(task_ids)
    ]
    try:
        async with sessions() as session:
            identity = await ensure_local_identity(session)
            (workspace,) = await workspace_ids(session, identity)

        async def worker(number: int) -> None:
            shuffle = random.Random(number).sample
            for round_ in range(5):
                async with sessions() as session, session.begin():
                    await register_tasks(
                        session,
                        workspace,
                        shuffle(registrations, len(registrations)),
                    )
                async with sessions() as session, session.begin():
                    await record_events(
                        session,
                        workspace,
                        [
                            EventRecord(
                                f"w{number}-r{round_}-{task_id}",
                                EventKind.TASK_COMPLETED,
                                datetime.now(UTC),
                                task_id=task_id,
                            )
                            for task_id in shuffle(task_ids, len(task_ids))
                        ],
                    )

        async with sessions() as session, session.begin():
            await register_tasks(
                session, workspace, [TaskRegistration(task_id, "step") for task_id in task_ids]
            )
        await asyncio.gather(*(worker(number) for number in range(6)))

        async with engine.connect() as connection:
            completed = await connection.scalar(
                select(func.count()).where(Task.status == TaskStatus.COMPLETED)
            )
        assert completed == len(task_ids)
    finally:
        await engine.dispose()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_sqlite_writes_take_turns_at_the_write_gate_and_reads_pass(api: Api) -> None:
    workspace = await api.workspace_id()
    async with api.write_gate:  # another request's write transaction, still running
        write = asyncio.create_task(api(REGISTER, workspace=workspace, tasks=[task("a")]))
        read = await api("{ organizations { slug } }")
        await asyncio.sleep(0.2)
        waiting = not write.done()
    registered = await write

    assert read["organizations"]
    assert waiting
    assert registered["registerTasks"]["registered"] == 1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_recording_a_keys_use_waits_at_the_write_gate(api: Api) -> None:
    """The authenticator's write (a key's first use in a minute) queues at the gate, as a
    request's transaction does. Met with SQLite's lock held by the transaction, it would wait in
    SQLite's busy handler on the event loop, where the transaction could not commit."""
    async with api.sessions() as session, session.begin():
        (workspace,) = await workspace_ids(session, api.identity)
        key = await create_api_key(session, workspace, "ci", api.identity.user_id)
    authenticator = Authenticator(
        api.sessions, RateLimiter(1000), None, None, write_gate=api.write_gate
    )

    async with transaction(api.sessions, api.write_gate) as session:
        await register_tasks(session, workspace, [TaskRegistration("a", "step")])
        identify = asyncio.create_task(
            authenticator.identify(Headers({"Authorization": f"Bearer {key.secret}"}))
        )
        await asyncio.sleep(0.2)
        waiting = not identify.done()
    identity = await identify
    async with api.sessions() as session:
        last_used = await session.scalar(select(ApiKey.last_used_at))

    assert waiting
    assert identity.api_key_workspace == workspace
    assert last_used is not None
