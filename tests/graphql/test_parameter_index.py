"""SQLite's index of parameter values: kept by triggers, filled by its migration, and used."""

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from stardag_graphql.migrations import downgrade, upgrade
from stardag_graphql.models import TaskParameterValue
from tests.graphql.conftest import REGISTER, Api
from tests.graphql.test_api import TASKS, task

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


async def indexed(engine: AsyncEngine) -> set[tuple[str, Any]]:
    async with engine.connect() as connection:
        rows = await connection.execute(select(TaskParameterValue.name, TaskParameterValue.value))
        return {(row.name, row.value) for row in rows}


async def test_each_scalar_leaf_is_indexed_until_its_task_is_deleted(
    api: Api, engine: AsyncEngine
) -> None:
    workspace = await api.workspace_id()
    parameters = {
        "date": "2026-01-01",
        "model": {"depth": 3, "rate": 0.5, "fast": True, "tags": ["a", "b"], "none": None},
        "note": "x" * 257,
        "__hidden": 1,
    }
    await api(REGISTER, workspace=workspace, tasks=[{**task("t"), "parameters": parameters}])

    assert await indexed(engine) == {
        ("date", "2026-01-01"),
        ("depth", 3),
        ("rate", 0.5),
        ("fast", 1),
    }

    async with engine.begin() as connection:
        await connection.execute(text("DELETE FROM tasks"))
    assert await indexed(engine) == set()


async def test_the_migration_indexes_the_tasks_registered_before_it(
    api: Api, engine: AsyncEngine, database_url: str
) -> None:
    workspace = await api.workspace_id()
    await api(REGISTER, workspace=workspace, tasks=[task("a", kind="k"), task("b", kind="j")])
    await engine.dispose()

    await asyncio.to_thread(downgrade, database_url, "0004")
    await asyncio.to_thread(upgrade, database_url)

    assert await indexed(engine) == {("kind", "k"), ("kind", "j")}
    data = await api(
        TASKS,
        workspace=workspace,
        first=5,
        filter={"parameters": [{"path": "kind", "equals": "j"}]},
    )
    assert [edge["node"]["taskId"] for edge in data["workspace"]["tasks"]["edges"]] == ["b"]


@contextmanager
def statements(engine: AsyncEngine) -> Iterator[list[tuple[str, Any]]]:
    seen: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        seen.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


async def test_a_filtered_page_reads_one_values_tasks_newest_first_without_sorting(
    api: Api, engine: AsyncEngine
) -> None:
    workspace = await api.workspace_id()
    await api(REGISTER, workspace=workspace, tasks=[task(f"t{i}", seed=i % 3) for i in range(9)])

    with statements(engine) as seen:
        await api(
            TASKS,
            workspace=workspace,
            first=2,
            filter={"parameters": [{"path": "seed", "equals": 1}]},
        )
    page = next((s, p) for s, p in seen if "ORDER BY" in s and "task_parameter_values" in s)
    async with engine.connect() as connection:
        plan = " / ".join(
            row.detail
            for row in await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {page[0]}", page[1])
        )

    assert plan.startswith("SEARCH task_parameter_values USING PRIMARY KEY"), plan
    assert "TEMP B-TREE" not in plan, plan
