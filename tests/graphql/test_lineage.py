"""Lineage: upstream and downstream closures with depths, limits, cycles and truncation."""

import uuid

import pytest
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncSession

from stardag_graphql.errors import UnknownTaskError
from stardag_graphql.models import Task, TaskDependency, TaskStatus
from stardag_graphql.store.lineage import Lineage, downstream, upstream
from stardag_graphql.store.tasks import TaskRegistration, register_tasks
from tests.graphql.conftest import make_workspace


def task(task_id: str, *dependencies: str) -> TaskRegistration:
    """A task named after its id, in the `lineage` namespace."""
    return TaskRegistration(
        task_id=task_id, name=task_id, namespace="lineage", dependencies=dependencies
    )


def depths(lineage: Lineage) -> list[tuple[str, int]]:
    """The lineage's nodes as (task id, depth), in the order returned."""
    return [(node.task_id, node.depth) for node in lineage.nodes]


async def diamond(session: AsyncSession) -> uuid.UUID:
    """A workspace holding root → (left, right) → base; returns the workspace id."""
    workspace = await make_workspace(session)
    await register_tasks(
        session,
        workspace,
        [task("base"), task("left", "base"), task("right", "base"), task("root", "left", "right")],
    )
    await session.commit()
    return workspace


async def test_a_diamond_reads_both_ways(session: AsyncSession) -> None:
    workspace = await diamond(session)

    up = await upstream(session, workspace, "root", max_depth=None, max_nodes=100)
    down = await downstream(session, workspace, "base", max_depth=None, max_nodes=100)

    assert up.root == "root"
    assert [(n.task_id, n.namespace, n.name, n.status, n.depth) for n in up.nodes] == [
        ("left", "lineage", "left", TaskStatus.PENDING, 1),
        ("right", "lineage", "right", TaskStatus.PENDING, 1),
        ("base", "lineage", "base", TaskStatus.PENDING, 2),
    ]
    assert depths(down) == [("left", 1), ("right", 1), ("root", 2)]
    assert not up.truncated
    assert not down.truncated


async def test_edges_are_the_dependencies_among_the_nodes(session: AsyncSession) -> None:
    workspace = await diamond(session)
    everything = [("base", "left"), ("base", "right"), ("left", "root"), ("right", "root")]

    up = await upstream(session, workspace, "root", max_depth=None, max_nodes=100)
    down = await downstream(session, workspace, "base", max_depth=None, max_nodes=100)
    near = await upstream(session, workspace, "root", max_depth=1, max_nodes=100)
    side = await upstream(session, workspace, "left", max_depth=None, max_nodes=100)

    assert up.edges == everything
    assert down.edges == everything
    assert near.edges == [("left", "root"), ("right", "root")]
    assert side.edges == [("base", "left")]


async def test_max_depth_one_gives_the_direct_neighbours(session: AsyncSession) -> None:
    workspace = await diamond(session)

    up = await upstream(session, workspace, "root", max_depth=1, max_nodes=100)
    down = await downstream(session, workspace, "base", max_depth=1, max_nodes=100)
    leaf = await upstream(session, workspace, "base", max_depth=None, max_nodes=100)

    assert depths(up) == [("left", 1), ("right", 1)]
    assert depths(down) == [("left", 1), ("right", 1)]
    assert leaf == Lineage(root="base", nodes=[], edges=[], truncated=False)


@pytest.mark.parametrize("max_depth", [None, 1, 2, 5])
async def test_a_cycle_terminates_with_each_node_once(
    session: AsyncSession, max_depth: int | None
) -> None:
    workspace = await make_workspace(session)
    pks = await register_tasks(session, workspace, [task("a"), task("b"), task("c")])
    # a needs b, b needs c, c needs a: inserted directly, as registration may refuse a cycle.
    session.add_all(
        TaskDependency(upstream_pk=pks[up], downstream_pk=pks[down], workspace_id=workspace)
        for up, down in [("b", "a"), ("c", "b"), ("a", "c")]
    )
    await session.commit()

    up = await upstream(session, workspace, "a", max_depth=max_depth, max_nodes=100)
    down = await downstream(session, workspace, "a", max_depth=max_depth, max_nodes=100)

    expected_up = [("b", 1), ("c", 2)]
    expected_down = [("c", 1), ("b", 2)]
    limit = max_depth or 2
    assert depths(up) == expected_up[:limit]
    assert depths(down) == expected_down[:limit]
    if max_depth is None:
        assert up.edges == [("a", "c"), ("b", "a"), ("c", "b")]


async def test_a_large_lineage_is_truncated_nearest_first(session: AsyncSession) -> None:
    workspace = await diamond(session)

    up = await upstream(session, workspace, "root", max_depth=None, max_nodes=2)
    exact = await upstream(session, workspace, "root", max_depth=None, max_nodes=3)
    one = await downstream(session, workspace, "base", max_depth=None, max_nodes=1)

    assert up.truncated
    assert depths(up) == [("left", 1), ("right", 1)]
    assert up.edges == [("left", "root"), ("right", "root")]
    assert not exact.truncated
    assert len(exact.nodes) == 3
    assert one.truncated
    assert depths(one) == [("left", 1)]


async def test_truncation_keeps_the_nearest_of_a_deep_graph(session: AsyncSession) -> None:
    workspace = await make_workspace(session)
    # Each task needs the two before it: deep, and reachable along paths of many lengths.
    ids = [f"t{index:02d}" for index in range(40)]
    await register_tasks(
        session, workspace, [task(ids[i], *ids[max(i - 2, 0) : i]) for i in range(40)]
    )
    await session.commit()

    up = await upstream(session, workspace, ids[39], max_depth=None, max_nodes=5)
    whole = await upstream(session, workspace, ids[39], max_depth=None, max_nodes=100)

    assert up.truncated
    assert depths(up) == [("t37", 1), ("t38", 1), ("t35", 2), ("t36", 2), ("t33", 3)]
    assert not whole.truncated
    assert depths(whole) == sorted(
        ((ids[i], (40 - i) // 2) for i in range(39)), key=lambda node: (node[1], node[0])
    )


async def test_a_chain_of_300_is_read_whole(session: AsyncSession) -> None:
    workspace = await make_workspace(session)
    ids = [f"t{index:03d}" for index in range(301)]
    await register_tasks(
        session, workspace, [task(ids[0]), *(task(ids[i], ids[i - 1]) for i in range(1, 301))]
    )
    await session.commit()

    up = await upstream(session, workspace, ids[300], max_depth=None, max_nodes=10_000)
    down = await downstream(session, workspace, ids[0], max_depth=None, max_nodes=300)
    near = await upstream(session, workspace, ids[300], max_depth=40, max_nodes=10_000)
    first = await upstream(session, workspace, ids[300], max_depth=None, max_nodes=20)

    assert depths(up) == [(ids[300 - depth], depth) for depth in range(1, 301)]
    assert depths(down) == [(ids[depth], depth) for depth in range(1, 301)]
    assert depths(near) == depths(up)[:40]
    assert not near.truncated
    assert depths(first) == depths(up)[:20]
    assert first.truncated
    assert not up.truncated
    assert not down.truncated
    assert up.edges == [(ids[i - 1], ids[i]) for i in range(1, 301)]


async def test_an_unknown_or_foreign_task_is_refused(session: AsyncSession) -> None:
    workspace = await diamond(session)
    other = await make_workspace(session, "other")
    await register_tasks(session, other, [task("elsewhere")])
    await session.commit()

    with pytest.raises(UnknownTaskError, match="missing"):
        await upstream(session, workspace, "missing", max_depth=None, max_nodes=10)
    with pytest.raises(UnknownTaskError, match="elsewhere"):
        await downstream(session, workspace, "elsewhere", max_depth=None, max_nodes=10)


@pytest.mark.parametrize(
    ("max_depth", "max_nodes", "message"),
    [
        (None, 0, "max_nodes .* got 0"),
        (None, 10_001, "max_nodes .* got 10001"),
        (0, 10, "max_depth .* got 0"),
        (-1, 10, "max_depth .* got -1"),
    ],
)
async def test_limits_are_validated(
    session: AsyncSession, max_depth: int | None, max_nodes: int, message: str
) -> None:
    workspace = await diamond(session)

    with pytest.raises(ValueError, match=message):
        await upstream(session, workspace, "root", max_depth=max_depth, max_nodes=max_nodes)


async def test_a_100k_task_graph_with_a_cycle_answers_nearest_first(
    session: AsyncSession,
) -> None:
    workspace = await make_workspace(session)
    layers, width = 1000, 100
    # Task (layer, i) needs (layer - 1, i) and (layer - 1, i + 1): a lattice of 100,000 tasks.
    ids = [[f"L{layer:04d}-{i:02d}" for i in range(width)] for layer in range(layers)]
    pks = {task_id: uuid.uuid4() for row in ids for task_id in row}
    needs = {
        ids[layer][i]: [ids[layer - 1][i], ids[layer - 1][(i + 1) % width]]
        for layer in range(1, layers)
        for i in range(width)
    }
    top = ids[-1][0]
    needs[ids[0][0]] = [top]  # closes a cycle through the whole graph
    await session.execute(
        insert(Task),
        [
            {
                "id": pk,
                "workspace_id": workspace,
                "task_id": task_id,
                "name": "node",
                "parameters": {},
            }
            for task_id, pk in pks.items()
        ],
    )
    await session.execute(
        insert(TaskDependency),
        [
            {"upstream_pk": pks[up], "downstream_pk": pks[down], "workspace_id": workspace}
            for down, ups in needs.items()
            for up in ups
        ],
    )
    await session.commit()
    # As autovacuum would after a load this size: without statistics, plans are guesses.
    await session.execute(text("ANALYZE"))
    nearest = breadth_first(needs, top)
    near = await upstream(session, workspace, top, max_depth=5, max_nodes=10_000)
    capped = await upstream(session, workspace, top, max_depth=None, max_nodes=1000)
    down = await downstream(session, workspace, ids[0][0], max_depth=3, max_nodes=10_000)

    assert depths(near) == [node for node in nearest if node[1] <= 5]
    assert len(near.nodes) == 2 + 3 + 4 + 5 + 6
    assert not near.truncated
    assert capped.truncated
    assert depths(capped) == nearest[:1000]
    needed_by: dict[str, list[str]] = {}
    for task_id, ups in needs.items():
        for up in ups:
            needed_by.setdefault(up, []).append(task_id)
    assert depths(down) == [node for node in breadth_first(needed_by, ids[0][0]) if node[1] <= 3]


def breadth_first(needs: dict[str, list[str]], root: str) -> list[tuple[str, int]]:
    """Every task `root` needs with its shortest distance, sorted by (depth, task id)."""
    seen = {root: 0}
    frontier = [root]
    while frontier:
        following = []
        for task_id in frontier:
            for up in needs.get(task_id, ()):
                if up not in seen:
                    seen[up] = seen[task_id] + 1
                    following.append(up)
        frontier = following
    del seen[root]
    return sorted(seen.items(), key=lambda item: (item[1], item[0]))
