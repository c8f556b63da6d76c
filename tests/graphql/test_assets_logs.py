"""Assets replace by name and validate their kind; logs append idempotently and page in order."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from stardag_graphql.errors import UnknownTaskError
from stardag_graphql.models import AssetKind
from stardag_graphql.store.assets import list_assets, put_asset
from stardag_graphql.store.builds import start_build
from stardag_graphql.store.logs import LogLine, append_logs, read_logs
from stardag_graphql.store.tasks import TaskRegistration, register_tasks
from tests.graphql.conftest import make_workspace

TASK = TaskRegistration(task_id="0b8e5f2c-0000-5000-8000-000000000001", name="get_range")
T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


async def workspace_with_task(session: AsyncSession) -> uuid.UUID:
    """A workspace with `TASK` registered in it."""
    workspace = await make_workspace(session)
    await register_tasks(session, workspace, [TASK])
    await session.commit()
    return workspace


def lines(seqs: range) -> list[LogLine]:
    """Log lines numbered `seqs`, one second apart."""
    return [LogLine(seq, f"line {seq}", T0 + timedelta(seconds=seq)) for seq in seqs]


async def test_putting_an_asset_again_replaces_it(session: AsyncSession) -> None:
    workspace = await workspace_with_task(session)
    await put_asset(session, workspace, TASK.task_id, "report", "markdown", "# Draft")
    await put_asset(session, workspace, TASK.task_id, "metrics", AssetKind.JSON, '{"rows": 3}')
    await session.commit()

    replaced = await put_asset(session, workspace, TASK.task_id, "report", "json", '{"n": 1}')
    await session.commit()

    assert (replaced.kind, replaced.body, replaced.data) == (AssetKind.JSON, None, {"n": 1})
    assets = await list_assets(session, workspace, TASK.task_id)
    assert [(a.name, a.kind, a.body, a.data) for a in assets] == [
        ("metrics", AssetKind.JSON, None, {"rows": 3}),
        ("report", AssetKind.JSON, None, {"n": 1}),
    ]


async def test_an_asset_needs_a_task_of_the_workspace(session: AsyncSession) -> None:
    workspace = await workspace_with_task(session)
    other = await make_workspace(session, "other")

    with pytest.raises(UnknownTaskError, match=TASK.task_id):
        await put_asset(session, other, TASK.task_id, "report", "markdown", "# Hi")
    with pytest.raises(UnknownTaskError, match=TASK.task_id):
        await list_assets(session, other, TASK.task_id)
    assert await list_assets(session, workspace, TASK.task_id) == []


@pytest.mark.parametrize(
    ("kind", "body", "message"),
    [
        ("html", "<p>", "'html'"),
        ("json", "{not json", "not valid JSON"),
        ("json", "[1, 2]", r"'\[1, 2\]'"),
    ],
)
async def test_an_invalid_asset_is_refused(
    session: AsyncSession, kind: str, body: str, message: str
) -> None:
    workspace = await workspace_with_task(session)

    with pytest.raises(ValueError, match=message):
        await put_asset(session, workspace, TASK.task_id, "report", kind, body)


async def test_resending_log_lines_appends_them_once(session: AsyncSession) -> None:
    workspace = await workspace_with_task(session)

    assert await append_logs(session, workspace, TASK.task_id, lines(range(3))) == 3
    await session.commit()
    resent = [*lines(range(1, 5)), *lines(range(4, 6))]
    assert await append_logs(session, workspace, TASK.task_id, resent) == 3
    await session.commit()

    read = await read_logs(session, workspace, TASK.task_id, after=None, limit=100)
    assert [entry.text for entry in read] == [f"line {seq}" for seq in range(6)]


async def test_each_build_numbers_its_run_from_zero_after_the_runs_before(
    session: AsyncSession,
) -> None:
    workspace = await workspace_with_task(session)
    first = (await start_build(session, workspace, None)).id
    second = (await start_build(session, workspace, None)).id
    await session.commit()

    def run(build: uuid.UUID, count: int) -> list[LogLine]:
        return [LogLine(seq, f"{build} {seq}", T0, build_id=build) for seq in range(count)]

    await append_logs(session, workspace, TASK.task_id, run(first, 3))
    await append_logs(session, workspace, TASK.task_id, run(first, 3))  # resent: no change
    await append_logs(session, workspace, TASK.task_id, run(second, 2))
    await session.commit()

    read = await read_logs(session, workspace, TASK.task_id, after=None, limit=100)
    assert [(entry.seq, entry.text) for entry in read] == [
        (0, f"{first} 0"),
        (1, f"{first} 1"),
        (2, f"{first} 2"),
        (3, f"{second} 0"),
        (4, f"{second} 1"),
    ]


async def test_logs_read_in_pages_in_line_order(session: AsyncSession) -> None:
    workspace = await workspace_with_task(session)
    # Sent out of order, and two lines logged at the same instant.
    sent = [*lines(range(7))[::-1], LogLine(7, "line 7", T0 + timedelta(seconds=6))]
    await append_logs(session, workspace, TASK.task_id, sent)
    await session.commit()

    pages: list[list[str]] = []
    after = None
    while page := await read_logs(session, workspace, TASK.task_id, after=after, limit=3):
        pages.append([entry.text for entry in page])
        after = page[-1].seq

    assert [len(page) for page in pages] == [3, 3, 2]
    assert [text for page in pages for text in page] == [f"line {seq}" for seq in range(8)]


async def test_logs_need_a_task_of_the_workspace(session: AsyncSession) -> None:
    await workspace_with_task(session)
    other = await make_workspace(session, "other")

    with pytest.raises(UnknownTaskError, match=TASK.task_id):
        await append_logs(session, other, TASK.task_id, lines(range(1)))
    with pytest.raises(UnknownTaskError, match=TASK.task_id):
        await read_logs(session, other, TASK.task_id, after=None, limit=10)


@pytest.mark.parametrize("limit", [0, 1001])
async def test_a_page_limit_out_of_range_is_refused(session: AsyncSession, limit: int) -> None:
    workspace = await workspace_with_task(session)

    with pytest.raises(ValueError, match=f"got {limit}"):
        await read_logs(session, workspace, TASK.task_id, after=None, limit=limit)


async def test_a_negative_sequence_number_is_refused(session: AsyncSession) -> None:
    workspace = await workspace_with_task(session)

    with pytest.raises(ValueError, match="got -1"):
        await append_logs(session, workspace, TASK.task_id, [LogLine(-1, "x", T0)])


async def test_a_line_with_nul_characters_is_kept_with_them_replaced(session: AsyncSession) -> None:
    # A task that prints binary data: PostgreSQL stores no NUL in text, and refusing the
    # line would lose every other line of its batch.
    workspace = await workspace_with_task(session)
    texts = ["before", "bytes \x00\x01 and more", "after"]
    printed = [LogLine(seq, text, T0) for seq, text in enumerate(texts)]

    assert await append_logs(session, workspace, TASK.task_id, printed) == 3
    await session.commit()

    read = await read_logs(session, workspace, TASK.task_id, after=None, limit=100)
    assert [entry.text for entry in read] == ["before", "bytes \ufffd\x01 and more", "after"]
