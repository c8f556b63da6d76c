"""The registry's GraphQL API through `schema.execute`, on SQLite and PostgreSQL."""

import asyncio
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from stardag_graphql import models
from stardag_graphql.context import Context
from stardag_graphql.models import Role
from stardag_graphql.mutations import CONFLICT_ATTEMPTS
from stardag_graphql.schema import MAX_ALIASES, MAX_DEPTH, schema
from stardag_graphql.store import organizations as organization_store
from stardag_graphql.store import tasks as task_store
from stardag_graphql.store.tenancy import Identity
from tests.graphql.conftest import RECORD, REGISTER, Api

TASKS = """
query Tasks($workspace: ID!, $filter: TaskFilter, $order: TaskOrder, $first: Int!, $after: String) {
  workspace(id: $workspace) {
    tasks(filter: $filter, orderBy: $order, first: $first, after: $after) {
      totalCount
      edges { cursor node { taskId } }
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    }
  }
}
"""


def task(task_id: str, name: str = "step", *deps: str, **parameters: Any) -> dict[str, Any]:
    return {
        "taskId": task_id,
        "name": name,
        "namespace": "demo",
        "parameters": parameters,
        "dependencies": list(deps),
    }


def event_input(
    event_id: str, kind: str, task_id: str, at: str = "2026-01-01T00:00:00Z", **more: Any
) -> dict[str, Any]:
    return {"eventId": event_id, "kind": kind, "taskId": task_id, "occurredAt": at, **more}


async def task_ids(api: Api, workspace: str, **variables: Any) -> list[str]:
    data = await api(TASKS, workspace=workspace, first=100, **variables)
    return [edge["node"]["taskId"] for edge in data["workspace"]["tasks"]["edges"]]


async def test_a_registered_dag_reads_back_with_its_dependencies(api: Api) -> None:
    workspace = await api.workspace_id()
    await api(REGISTER, workspace=workspace, tasks=[task("a"), task("b", "step", "a")])

    data = await api(
        """query($w: ID!) { workspace(id: $w) {
            b: task(taskId: "b") { taskId namespace name status dependencies { taskId } }
            a: task(taskId: "a") { dependents { taskId } }
            missing: task(taskId: "nope") { taskId } } }""",
        w=workspace,
    )

    assert data["workspace"]["b"] == {
        "taskId": "b",
        "namespace": "demo",
        "name": "step",
        "status": "PENDING",
        "dependencies": [{"taskId": "a"}],
    }
    assert data["workspace"]["a"]["dependents"] == [{"taskId": "b"}]
    assert data["workspace"]["missing"] is None


async def test_every_object_is_a_node_by_its_global_id(api: Api) -> None:
    workspace = await api.workspace_id()
    await api(REGISTER, workspace=workspace, tasks=[task("a")])
    started = await api(
        'mutation($w: ID!) { startBuild(workspaceId: $w, commit: "abc123") { id name } }',
        w=workspace,
    )
    ids = await api(
        """query($w: ID!) {
            organizations { id } workspace(id: $w) { id task(taskId: "a") { id } } }""",
        w=workspace,
    )
    wanted = {
        "Organization": ids["organizations"][0]["id"],
        "Workspace": ids["workspace"]["id"],
        "Task": ids["workspace"]["task"]["id"],
        "Build": started["startBuild"]["id"],
    }

    for typename, node_id in wanted.items():
        data = await api("query($id: ID!) { node(id: $id) { __typename id } }", id=node_id)
        assert data["node"] == {"__typename": typename, "id": node_id}
    assert "-" in started["startBuild"]["name"]


async def test_registering_is_idempotent_and_concurrent_registrations_make_one_row(
    api: Api, engine: AsyncEngine
) -> None:
    workspace = await api.workspace_id()
    tasks = [task("a"), task("b", "step", "a")]

    results = await asyncio.gather(
        *(api(REGISTER, workspace=workspace, tasks=tasks) for _ in range(20))
    )

    assert all(result["registerTasks"]["registered"] == 2 for result in results)
    async with engine.connect() as connection:
        rows = await connection.scalar(select(func.count()).select_from(models.Task))
        edges = await connection.scalar(select(func.count()).select_from(models.TaskDependency))
    assert (rows, edges) == (2, 1)


async def test_a_build_started_with_a_key_starts_once(api: Api) -> None:
    workspace = await api.workspace_id()
    organization = (await api('{ organization(slug: "local") { id } }'))["organization"]["id"]
    other = await api(
        'mutation($o: ID!) { createWorkspace(organizationId: $o, slug: "other", name: "Other") '
        "{ id } }",
        o=organization,
    )
    key = str(uuid.uuid4())
    start = "mutation($w: ID!, $k: UUID) { startBuild(workspaceId: $w, key: $k) { id name } }"

    first = await api(start, w=workspace, k=key)
    again = await api(start, w=workspace, k=key)
    taken = await api.error(start, w=other["createWorkspace"]["id"], k=key)

    assert again == first
    assert taken.extensions == {"code": "BAD_USER_INPUT"}
    assert "already taken" in taken.message


async def test_a_build_collects_its_tasks_events_and_graph(api: Api) -> None:
    workspace = await api.workspace_id()
    build = (await api("mutation($w: ID!) { startBuild(workspaceId: $w) { id } }", w=workspace))[
        "startBuild"
    ]["id"]
    await api(
        REGISTER,
        workspace=workspace,
        tasks=[task("a"), task("b", "step", "a")],
        build=build,
        roots=["b"],
    )
    events = [
        event_input("e1", "TASK_RUNNING", "a", buildId=build),
        event_input("e2", "TASK_COMPLETED", "a", "2026-01-01T00:00:01Z", buildId=build),
    ]
    first = await api(RECORD, workspace=workspace, events=events)
    again = await api(RECORD, workspace=workspace, events=events)
    finished = await api(
        "mutation($b: ID!) { finishBuild(buildId: $b, status: COMPLETED) { status finishedAt } }",
        b=build,
    )

    data = await api(
        """query($b: ID!) { node(id: $b) { ... on Build {
            status user { email } rootTasks { taskId }
            graph { nodes { taskId status } edges { upstream downstream } }
            events(first: 10) { totalCount nodes { eventId kind task { taskId } } } } } }""",
        b=build,
    )

    assert first["recordEvents"] == {"recorded": 2, "duplicates": 0}
    assert again["recordEvents"] == {"recorded": 0, "duplicates": 2}
    assert finished["finishBuild"]["status"] == "COMPLETED"
    assert finished["finishBuild"]["finishedAt"] is not None
    node = data["node"]
    assert node["user"] == {"email": "local@localhost"}
    assert node["rootTasks"] == [{"taskId": "b"}]
    assert node["graph"] == {
        "nodes": [{"taskId": "a", "status": "COMPLETED"}, {"taskId": "b", "status": "PENDING"}],
        "edges": [{"upstream": "a", "downstream": "b"}],
    }
    assert node["events"]["totalCount"] == 2
    assert [e["kind"] for e in node["events"]["nodes"]] == ["TASK_RUNNING", "TASK_COMPLETED"]


async def test_an_events_task_id_reads_with_the_event_without_loading_its_task(
    api: Api, engine: AsyncEngine
) -> None:
    workspace = await api.workspace_id()
    build = (await api("mutation($w: ID!) { startBuild(workspaceId: $w) { id } }", w=workspace))[
        "startBuild"
    ]["id"]
    await api(REGISTER, workspace=workspace, tasks=[task("a"), task("b", "step", "a")])
    events = [
        event_input("e1", "TASK_RUNNING", "a", buildId=build),
        event_input("e2", "TASK_COMPLETED", "b", "2026-01-01T00:00:01Z", buildId=build),
        {
            "eventId": "e3",
            "kind": "BUILD_COMPLETED",
            "occurredAt": "2026-01-01T00:00:02Z",
            "buildId": build,
        },
    ]
    await api(RECORD, workspace=workspace, events=events)

    query = """query($b: ID!) { node(id: $b) { ... on Build {
        events(first: 10) { nodes { eventId %s } } } } }"""
    with counting(engine) as without_task_ids:
        await api(query % "", b=build)
    with counting(engine) as with_task_ids:
        data = await api(query % "taskId", b=build)

    assert data["node"]["events"]["nodes"] == [
        {"eventId": "e1", "taskId": "a"},
        {"eventId": "e2", "taskId": "b"},
        {"eventId": "e3", "taskId": None},
    ]
    # Read with the events themselves: no statement more than for the events alone.
    assert with_task_ids() == without_task_ids()


async def test_a_finished_build_cannot_finish_otherwise(api: Api) -> None:
    workspace = await api.workspace_id()
    build = (await api("mutation($w: ID!) { startBuild(workspaceId: $w) { id } }", w=workspace))[
        "startBuild"
    ]["id"]
    finish = "mutation($b: ID!, $s: BuildStatus!) { finishBuild(buildId: $b, status: $s) { name } }"
    await api(finish, b=build, s="FAILED")
    await api(finish, b=build, s="FAILED")

    error = await api.error(finish, b=build, s="COMPLETED")

    assert "already finished as failed" in error.message
    assert error.extensions == {"code": "BAD_USER_INPUT"}


async def three_pages(
    api: Api, workspace: str, **variables: Any
) -> tuple[list[str], dict[str, Any]]:
    """The task ids of three pages of 20, following cursors, and the last page's connection;
    every page counts 45 tasks."""
    seen: list[str] = []
    after = None
    for _ in range(3):
        data = await api(TASKS, workspace=workspace, first=20, after=after, **variables)
        tasks = data["workspace"]["tasks"]
        seen.extend(edge["node"]["taskId"] for edge in tasks["edges"])
        after = tasks["pageInfo"]["endCursor"]
        assert tasks["totalCount"] == 45
    return seen, tasks


async def test_pages_follow_cursors_to_the_end_without_gaps(api: Api) -> None:
    workspace = await api.workspace_id()
    await api(REGISTER, workspace=workspace, tasks=[task(f"t{i:02}") for i in range(45)])

    seen, last = await three_pages(api, workspace, order={"field": "TASK_ID", "direction": "ASC"})

    assert seen == [f"t{i:02}" for i in range(45)]
    assert last["pageInfo"]["hasNextPage"] is False
    assert last["pageInfo"]["hasPreviousPage"] is True


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"first": 0}, "first must be between 1 and 100, got 0"),
        ({"first": 101}, "first must be between 1 and 100, got 101"),
        ({"first": 5, "after": "garbage"}, "is not a cursor of this list"),
    ],
)
async def test_a_bad_page_request_is_a_client_error(
    api: Api, variables: dict[str, Any], message: str
) -> None:
    workspace = await api.workspace_id()

    error = await api.error(TASKS, workspace=workspace, **variables)

    assert message in error.message
    assert error.extensions == {"code": "BAD_USER_INPUT"}


async def test_a_cursor_of_another_ordering_is_refused(api: Api) -> None:
    workspace = await api.workspace_id()
    await api(REGISTER, workspace=workspace, tasks=[task("a"), task("b")])
    data = await api(TASKS, workspace=workspace, first=1)
    cursor = data["workspace"]["tasks"]["pageInfo"]["endCursor"]

    error = await api.error(
        TASKS, workspace=workspace, first=1, after=cursor, order={"field": "NAME"}
    )

    assert "ordered by name:desc" in error.message


async def test_filters_combine(api: Api) -> None:
    workspace = await api.workspace_id()
    await api(
        REGISTER,
        workspace=workspace,
        tasks=[
            task("fit-1", "fit_model", depth=3, kind="tree", fast=True),
            task("fit-2", "fit_model", depth=5, kind="tree", fast=False),
            task("fit-3", "fit_model", depth=3.5, kind="linear", model={"depth": 3}),
            task("load-1", "load_data", depth="3", fast=1),
        ],
    )
    await api(RECORD, workspace=workspace, events=[event_input("e", "TASK_FAILED", "fit-2")])

    async def matching(**task_filter: Any) -> list[str]:
        return sorted(await task_ids(api, workspace, filter=task_filter))

    def where(path: str, value: Any) -> dict[str, Any]:
        return {"parameters": [{"path": path, "equals": value}]}

    assert await matching(names=["fit_model"]) == ["fit-1", "fit-2", "fit-3"]
    assert await matching(statuses=["FAILED"]) == ["fit-2"]
    assert await matching(namespace="other") == []
    assert await matching(**where("depth", 3)) == ["fit-1"]
    assert await matching(**where("depth", "3")) == ["load-1"]
    assert await matching(**where("depth", 3.5)) == ["fit-3"]
    assert await matching(**where("fast", True)) == ["fit-1"]
    assert await matching(**where("fast", 1)) == ["load-1"]
    assert await matching(**where("model.depth", 3)) == ["fit-3"]
    assert await matching(**where("kind", "tree"), statuses=["PENDING"]) == ["fit-1"]
    assert await matching(search="LOAD") == ["load-1"]
    assert await matching(search="fit-") == ["fit-1", "fit-2", "fit-3"]
    assert await matching(createdAfter="2999-01-01T00:00:00Z") == []
    assert len(await matching(createdBefore="2999-01-01T00:00:00Z")) == 4


async def test_parameter_conditions_match_the_value_at_their_path_only(api: Api) -> None:
    workspace = await api.workspace_id()
    long_text = "x" * 300
    await api(
        REGISTER,
        workspace=workspace,
        tasks=[
            task("none", limit=None, tag="a"),
            task("tagged", limit=3, tag="a"),
            task("big", seed=2**70),
            task("seven", seed=7),
            task("nested", model={"seed": 7}),
            task("in-list", runs=[{"seed": 7}]),
            task("long", note=long_text),
            task("short", note=long_text[:256]),
            {**task("private"), "parameters": {"__mark": 1}},
        ],
    )

    async def matching(*conditions: tuple[str, Any]) -> list[str]:
        parameters = [{"path": path, "equals": value} for path, value in conditions]
        return sorted(await task_ids(api, workspace, filter={"parameters": parameters}))

    assert await matching(("tag", "a"), ("limit", 3)) == ["tagged"]
    assert await matching(("seed", 2**70)) == ["big"]
    assert await matching(("seed", 7)) == ["seven"]
    assert await matching(("model.seed", 7)) == ["nested"]
    assert await matching(("note", long_text)) == ["long"]
    assert await matching(("note", long_text[:256])) == ["short"]
    assert await matching(("__mark", 1)) == ["private"]
    values = await api(
        """query($w: ID!) { workspace(id: $w) {
            filterValues(key: "limit", filter: {parameters: [{path: "tag", equals: "a"}]}) } }""",
        w=workspace,
    )
    assert values["workspace"]["filterValues"] == ["3"]


async def test_a_parameter_filter_pages_newest_first_across_registrations(api: Api) -> None:
    workspace = await api.workspace_id()
    for batch in range(3):
        await api(
            REGISTER,
            workspace=workspace,
            tasks=[task(f"b{batch}-{i:02}", kind="k" if i % 4 else "other") for i in range(20)],
        )
    newest_first = [t for t in await task_ids(api, workspace) if int(t[-2:]) % 4]

    for direction, expected in (("DESC", newest_first), ("ASC", newest_first[::-1])):
        seen, last = await three_pages(
            api,
            workspace,
            filter={"parameters": [{"path": "kind", "equals": "k"}]},
            order={"field": "CREATED_AT", "direction": direction},
        )
        assert seen == expected
        assert last["pageInfo"]["hasNextPage"] is False


async def test_a_non_scalar_or_malformed_parameter_condition_is_refused(api: Api) -> None:
    workspace = await api.workspace_id()

    nested = await api.error(
        TASKS, workspace=workspace, first=5, filter={"parameters": [{"path": "a", "equals": [1]}]}
    )
    dotted = await api.error(
        TASKS, workspace=workspace, first=5, filter={"parameters": [{"path": "a..b", "equals": 1}]}
    )

    assert "equals must be a string, number, boolean or null" in nested.message
    assert "is not a dotted path" in dotted.message


async def test_orderings_sort_both_ways(api: Api) -> None:
    workspace = await api.workspace_id()
    await api(REGISTER, workspace=workspace, tasks=[task("x1", "beta"), task("x2", "alpha")])

    by_name = await task_ids(api, workspace, order={"field": "NAME", "direction": "ASC"})
    by_id_desc = await task_ids(api, workspace, order={"field": "TASK_ID", "direction": "DESC"})

    assert by_name == ["x2", "x1"]
    assert by_id_desc == ["x2", "x1"]


async def test_autocomplete_offers_parameter_names_and_values(api: Api) -> None:
    workspace = await api.workspace_id()
    await api(
        REGISTER,
        workspace=workspace,
        tasks=[
            task("a", "fit", model="tree", learning_rate=0.1),
            task("b", "fit", model="trellis", limit=3),
            task("c", "load", path="/data"),
        ],
    )

    data = await api(
        """query($w: ID!) { workspace(id: $w) {
            all: filterKeys
            fit: filterKeys(filter: {names: ["fit"]}, prefix: "l")
            models: filterValues(key: "model", prefix: "tr")
            limits: filterValues(key: "limit") } }""",
        w=workspace,
    )

    assert data["workspace"] == {
        "all": ["learning_rate", "limit", "model", "path"],
        "fit": ["learning_rate", "limit"],
        "models": ["tree", "trellis"],
        "limits": ["3"],
    }


async def test_task_families_are_listed_however_many_tasks_each_has(api: Api) -> None:
    workspace = await api.workspace_id()
    tasks = [task(f"fit-{i}", "fit", seed=i) for i in range(30)]
    tasks += [task("f", "filter"), task("l", "load"), task("p", "fit_100%")]
    tasks += [{**task("x", "fit"), "namespace": "etl"}, {**task("y", "zip"), "namespace": ""}]
    await api(REGISTER, workspace=workspace, tasks=tasks)

    data = await api(
        """query($w: ID!) { workspace(id: $w) {
            all: taskFamilies { namespace name }
            fi: taskFamilies(prefix: "fi") { namespace name }
            demoFi: taskFamilies(namespace: "demo", prefix: "fi") { name }
            percent: taskFamilies(prefix: "fit_1") { name }
            top: taskFamilies(namespace: "", first: 1) { name }
            two: taskFamilies(first: 2) { name } } }""",
        w=workspace,
    )

    assert data["workspace"] == {
        "all": [
            {"namespace": "", "name": "zip"},
            {"namespace": "demo", "name": "filter"},
            {"namespace": "demo", "name": "fit"},
            {"namespace": "demo", "name": "fit_100%"},
            {"namespace": "demo", "name": "load"},
            {"namespace": "etl", "name": "fit"},
        ],
        "fi": [
            {"namespace": "demo", "name": "filter"},
            {"namespace": "demo", "name": "fit"},
            {"namespace": "demo", "name": "fit_100%"},
            {"namespace": "etl", "name": "fit"},
        ],
        "demoFi": [{"name": "filter"}, {"name": "fit"}, {"name": "fit_100%"}],
        "percent": [{"name": "fit_100%"}],
        "top": [{"name": "zip"}],
        "two": [{"name": "zip"}, {"name": "filter"}],
    }
    error = await api.error(
        "query($w: ID!) { workspace(id: $w) { taskFamilies(first: 0) { name } } }", w=workspace
    )
    assert error.message == "first must be between 1 and 1000, got 0"


async def test_lineage_is_typed_by_whether_it_was_truncated(api: Api) -> None:
    workspace = await api.workspace_id()
    chain = [task("t0")] + [task(f"t{i}", "step", f"t{i - 1}") for i in range(1, 6)]
    await api(REGISTER, workspace=workspace, tasks=chain)
    lineage = """query($w: ID!, $depth: Int, $nodes: Int!) { workspace(id: $w) {
        task(taskId: "t5") { upstream(maxDepth: $depth, maxNodes: $nodes) {
          __typename
          ... on Lineage {
            nodes { taskId depth status task { name } } edges { upstream downstream } }
          ... on TruncatedLineage { nodes { taskId } maxNodes } } } } }"""

    whole = await api(lineage, w=workspace, depth=None, nodes=100)
    near = await api(lineage, w=workspace, depth=2, nodes=100)
    cut = await api(lineage, w=workspace, depth=None, nodes=3)
    down = await api(
        """query($w: ID!) { workspace(id: $w) { task(taskId: "t0") {
            downstream(maxDepth: 1) { ... on Lineage { nodes { taskId } } } } } }""",
        w=workspace,
    )

    up = whole["workspace"]["task"]["upstream"]
    assert up["__typename"] == "Lineage"
    assert [(n["taskId"], n["depth"]) for n in up["nodes"]] == [
        ("t4", 1),
        ("t3", 2),
        ("t2", 3),
        ("t1", 4),
        ("t0", 5),
    ]
    assert up["nodes"][0]["task"] == {"name": "step"}
    assert len(up["edges"]) == 5
    assert [n["taskId"] for n in near["workspace"]["task"]["upstream"]["nodes"]] == ["t4", "t3"]
    truncated = cut["workspace"]["task"]["upstream"]
    assert truncated == {
        "__typename": "TruncatedLineage",
        "nodes": [{"taskId": "t4"}, {"taskId": "t3"}, {"taskId": "t2"}],
        "maxNodes": 3,
    }
    assert down["workspace"]["task"]["downstream"]["nodes"] == [{"taskId": "t1"}]


async def test_locks_grant_one_holder_and_fence_the_rest(api: Api) -> None:
    workspace = await api.workspace_id()
    acquire = """mutation($w: ID!, $holder: String!) {
        acquireLock(workspaceId: $w, key: "task-a", holder: $holder, ttlSeconds: 30) {
          acquired lease { fencingToken expiresAt } } }"""

    first = await api(acquire, w=workspace, holder="worker-1")
    second = await api(acquire, w=workspace, holder="worker-2")
    token = first["acquireLock"]["lease"]["fencingToken"]
    held = await api(
        """query($w: ID!, $t: Int!) { workspace(id: $w) {
            locks { key holder fencingToken }
            fencingTokenValid(key: "task-a", fencingToken: $t) } }""",
        w=workspace,
        t=token,
    )
    renewed = await api(
        """mutation($w: ID!, $t: Int!) { renewLock(workspaceId: $w, key: "task-a",
            holder: "worker-1", fencingToken: $t, ttlSeconds: 60) { acquired } }""",
        w=workspace,
        t=token,
    )
    released = await api(
        """mutation($w: ID!, $t: Int!) {
            releaseLock(workspaceId: $w, key: "task-a", holder: "worker-1", fencingToken: $t) }""",
        w=workspace,
        t=token,
    )
    third = await api(acquire, w=workspace, holder="worker-2")

    assert first["acquireLock"]["acquired"] is True
    assert second["acquireLock"] == {"acquired": False, "lease": None}
    assert held["workspace"]["locks"] == [
        {"key": "task-a", "holder": "worker-1", "fencingToken": token}
    ]
    assert held["workspace"]["fencingTokenValid"] is True
    assert renewed["renewLock"]["acquired"] is True
    assert released["releaseLock"] is True
    assert third["acquireLock"]["lease"]["fencingToken"] == token + 1


async def test_work_done_under_a_lock_is_recorded_only_with_a_live_token(api: Api) -> None:
    workspace = await api.workspace_id()
    await api(REGISTER, workspace=workspace, tasks=[task("a")])
    acquire = """mutation($w: ID!, $holder: String!, $ttl: Float!) {
        acquireLock(workspaceId: $w, key: "task-a", holder: $holder, ttlSeconds: $ttl) {
          lease { fencingToken } } }"""
    complete = """mutation($w: ID!, $holder: String!, $t: Int!, $e: String!) {
        recordEventsUnderLock(workspaceId: $w, key: "task-a", holder: $holder, fencingToken: $t,
          events: [{eventId: $e, kind: TASK_COMPLETED, occurredAt: "2026-01-01T00:00:00Z",
                    taskId: "a"}]) }"""
    stale = (await api(acquire, w=workspace, holder="worker-1", ttl=0.2))["acquireLock"]["lease"]
    await asyncio.sleep(0.3)
    fresh = (await api(acquire, w=workspace, holder="worker-2", ttl=30))["acquireLock"]["lease"]

    refused = await api(
        complete, w=workspace, holder="worker-1", t=stale["fencingToken"], e="from-1"
    )
    recorded = await api(
        complete, w=workspace, holder="worker-2", t=fresh["fencingToken"], e="from-2"
    )
    resent = await api(
        complete, w=workspace, holder="worker-2", t=fresh["fencingToken"], e="from-2"
    )
    events = await api(
        """query($w: ID!) { workspace(id: $w) { task(taskId: "a") {
            status events(first: 10) { nodes { eventId } } } locks { key } } }""",
        w=workspace,
    )

    assert fresh["fencingToken"] == stale["fencingToken"] + 1
    assert refused["recordEventsUnderLock"] is False
    assert recorded["recordEventsUnderLock"] is True
    assert resent["recordEventsUnderLock"] is True
    task_row = events["workspace"]["task"]
    assert task_row["status"] == "COMPLETED"
    assert [node["eventId"] for node in task_row["events"]["nodes"]] == ["from-2"]
    assert events["workspace"]["locks"] == []


async def test_locks_in_bulk_grant_renew_and_record_each_lease_on_its_own(api: Api) -> None:
    workspace = await api.workspace_id()
    await api(REGISTER, workspace=workspace, tasks=[task("a"), task("b")])
    acquire = """mutation($w: ID!, $keys: [String!]!, $holder: String!) {
        acquireLocks(workspaceId: $w, keys: $keys, holder: $holder, ttlSeconds: 30) {
          acquired lease { key fencingToken } } }"""
    taken = (await api(acquire, w=workspace, keys=["a", "b"], holder="w1"))["acquireLocks"]
    refused = (await api(acquire, w=workspace, keys=["b", "c"], holder="w2"))["acquireLocks"]
    leases = [{"key": r["lease"]["key"], "fencingToken": r["lease"]["fencingToken"]} for r in taken]
    renewed = await api(
        """mutation($w: ID!, $l: [LeaseInput!]!) {
            renewLocks(workspaceId: $w, leases: $l, holder: "w1", ttlSeconds: 30) }""",
        w=workspace,
        l=[*leases, {"key": "c", "fencingToken": 1}],
    )
    event = {"kind": "TASK_COMPLETED", "occurredAt": "2026-01-01T00:00:00Z"}
    recorded = await api(
        """mutation($w: ID!, $c: [LockedEventsInput!]!) {
            recordEventsUnderLocks(workspaceId: $w, holder: "w1", completions: $c) }""",
        w=workspace,
        c=[
            {**leases[0], "events": [{**event, "eventId": "a-done", "taskId": "a"}]},
            {
                "key": "b",
                "fencingToken": 99,
                "events": [{**event, "eventId": "b-done", "taskId": "b"}],
            },
        ],
    )
    released = await api(
        """mutation($w: ID!, $l: [LeaseInput!]!) {
            releaseLocks(workspaceId: $w, leases: $l, holder: "w1") }""",
        w=workspace,
        l=leases,
    )
    state = await api(
        """query($w: ID!) { workspace(id: $w) { locks { key holder }
            a: task(taskId: "a") { status } b: task(taskId: "b") { status } } }""",
        w=workspace,
    )

    assert [r["acquired"] for r in taken] == [True, True]
    assert [(r["acquired"], r["lease"] and r["lease"]["key"]) for r in refused] == [
        (False, None),
        (True, "c"),
    ]
    assert renewed["renewLocks"] == [True, True, False]
    assert recorded["recordEventsUnderLocks"] == [True, False]
    assert released["releaseLocks"] == [False, True]  # "a" was freed by its completion
    assert state["workspace"]["locks"] == [{"key": "c", "holder": "w2"}]
    assert (state["workspace"]["a"]["status"], state["workspace"]["b"]["status"]) == (
        "COMPLETED",
        "PENDING",
    )


async def test_assets_and_logs_attach_to_a_task(api: Api) -> None:
    workspace = await api.workspace_id()
    await api(REGISTER, workspace=workspace, tasks=[task("a")])
    await api(
        """mutation($w: ID!) {
            report: putAsset(workspaceId: $w, taskId: "a", name: "report", kind: MARKDOWN,
                             body: "# Done") { name }
            metrics: putAsset(workspaceId: $w, taskId: "a", name: "metrics", kind: JSON,
                              body: "{\\"auc\\": 0.9}") { name } }""",
        w=workspace,
    )
    lines = [{"seq": i, "text": f"line {i}", "loggedAt": "2026-01-01T00:00:00Z"} for i in range(3)]
    append = """mutation($w: ID!, $lines: [LogLineInput!]!) {
        appendLogs(workspaceId: $w, taskId: "a", lines: $lines) { appended } }"""
    appended = await api(append, w=workspace, lines=lines)
    again = await api(append, w=workspace, lines=lines)

    data = await api(
        """query($w: ID!) { workspace(id: $w) { task(taskId: "a") {
            assets { name kind body data } logs(after: 0) { seq text } } } }""",
        w=workspace,
    )

    assert appended["appendLogs"]["appended"] == 3
    assert again["appendLogs"]["appended"] == 0
    assert data["workspace"]["task"] == {
        "assets": [
            {"name": "metrics", "kind": "JSON", "body": None, "data": {"auc": 0.9}},
            {"name": "report", "kind": "MARKDOWN", "body": "# Done", "data": None},
        ],
        "logs": [{"seq": 1, "text": "line 1"}, {"seq": 2, "text": "line 2"}],
    }


async def test_unknown_tasks_and_ids_are_client_errors(api: Api) -> None:
    workspace = await api.workspace_id()

    unknown = await api.error(
        RECORD, workspace=workspace, events=[event_input("e", "TASK_RUNNING", "ghost")]
    )
    not_an_id = await api.error('{ workspace(id: "bad") { id } }')
    build_as_workspace = await api.error(
        "mutation($b: ID!) { finishBuild(buildId: $b, status: FAILED) { id } }", b=workspace
    )
    # Event inputs skip Strawberry's field-by-field conversion: their ids must fail alike.
    event_build_not_an_id = await api.error(
        RECORD, workspace=workspace, events=[event_input("e", "TASK_RUNNING", "t", buildId="bad")]
    )
    event_build_as_workspace = await api.error(
        RECORD,
        workspace=workspace,
        events=[event_input("e", "TASK_RUNNING", "t", buildId=workspace)],
    )

    assert unknown.message == (
        "task ids not registered in this workspace: ghost "
        "(register a task with registerTasks before naming it)"
    )
    assert unknown.extensions == {"code": "NOT_FOUND"}
    assert "GlobalID" in not_an_id.message
    assert "is a Workspace id, not a Build id" in build_as_workspace.message
    assert event_build_not_an_id.message == not_an_id.message
    assert "is a Workspace id, not a Build id" in event_build_as_workspace.message


async def test_a_foreign_workspace_reads_exactly_like_a_missing_one(
    api: Api, engine: AsyncEngine
) -> None:
    mine = await api.workspace_id()
    await api(REGISTER, workspace=mine, tasks=[task("a")])
    task_id = (
        await api('query($w: ID!) { workspace(id: $w) { task(taskId: "a") { id } } }', w=mine)
    )["workspace"]["task"]["id"]
    stranger = Api(
        api.sessions,
        Identity(uuid.uuid4(), {uuid.uuid4(): Role.OWNER}),
        api.notifier,
        api.write_gate,
    )
    missing = "V29ya3NwYWNlOjAwMDAwMDAwLTAwMDAtMDAwMC0wMDAwLTAwMDAwMDAwMDAwMA=="

    assert await stranger("{ organizations { slug } }") == {"organizations": []}
    for workspace in (mine, missing):
        assert await stranger("query($w: ID!) { workspace(id: $w) { id } }", w=workspace) == {
            "workspace": None
        }
        error = await stranger.error(REGISTER, workspace=workspace, tasks=[task("x")])
        assert error.message.startswith("no workspace")
        assert error.extensions == {"code": "NOT_FOUND"}
    assert await stranger("query($t: ID!) { node(id: $t) { id } }", t=task_id) == {"node": None}


async def test_guards_refuse_deep_aliased_and_oversized_operations(api: Api) -> None:
    deep = (
        '{ node(id: "x") { '
        + "... on Task { dependencies { " * MAX_DEPTH
        + "taskId"
        + " } }" * MAX_DEPTH
        + " } }"
    )
    aliased = "{ " + " ".join(f"a{i}: viewer {{ email }}" for i in range(MAX_ALIASES + 1)) + " }"
    huge = "{ viewer { " + "email " * 6000 + "} }"
    workspace = await api.workspace_id()

    errors = [await api.error(query) for query in (deep, aliased, huge)]
    batch = await api.error(
        REGISTER, workspace=workspace, tasks=[task(f"t{i}") for i in range(5001)]
    )

    assert "exceeds maximum operation depth" in errors[0].message
    assert "aliases found" in errors[1].message
    assert "token" in errors[2].message.lower()
    assert "5001 tasks in one request; send at most 5000" in batch.message


async def test_an_unexpected_error_is_masked_with_the_request_id_and_logged(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_sessions() -> Any:
        raise RuntimeError("secret detail: password=hunter2")

    context = Context(broken_sessions, api.identity, api.notifier, request_id="req-42")  # type: ignore[arg-type]

    result = await schema.execute("{ organizations { slug } }", context_value=context)

    assert result.errors is not None
    error = result.errors[0]
    assert error.message == (
        "Internal server error (request id req-42): the server log has the details"
    )
    assert error.extensions == {"code": "INTERNAL_SERVER_ERROR", "requestId": "req-42"}
    assert "hunter2" not in str(result.errors)
    logged = [r for r in caplog.records if r.name == "stardag.registry"]
    assert len(logged) == 1
    assert "req-42" in logged[0].getMessage()
    assert logged[0].exc_info is not None


async def test_related_objects_load_in_a_constant_number_of_queries(
    api: Api, engine: AsyncEngine
) -> None:
    workspace = await api.workspace_id()
    query = """query($w: ID!) { workspace(id: $w) { tasks(first: 100) { nodes {
        taskId dependencies { taskId } dependents { taskId } assets { name } } } } }"""

    async def statements_for(width: int) -> int:
        tasks = [task(f"w{width}-root")] + [
            task(f"w{width}-{i}", "step", f"w{width}-root") for i in range(width)
        ]
        await api(REGISTER, workspace=workspace, tasks=tasks)
        with counting(engine) as count:
            await api(query, w=workspace)
        return count()

    assert await statements_for(3) == await statements_for(30)


@contextmanager
def counting(engine: AsyncEngine) -> Iterator[Callable[[], int]]:
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(str(args[2]))

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield statements.__len__
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


async def test_the_readme_query_runs(api: Api) -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    (query,) = re.findall(r"```graphql\n(.*?)```", readme, re.DOTALL)
    workspace = await api.workspace_id()
    await api(REGISTER, workspace=workspace, tasks=[task("a", "fit", model={"depth": 3})])
    await api(RECORD, workspace=workspace, events=[event_input("e", "TASK_FAILED", "a")])

    data = await api(query, workspace=workspace)

    assert [edge["node"]["taskId"] for edge in data["workspace"]["tasks"]["edges"]] == ["a"]


SET_ROOT = """
mutation($workspace: ID!, $name: String!, $uri: String!) {
  setTargetRoot(workspaceId: $workspace, name: $name, uri: $uri) { name uri }
}
"""
ROOTS = "query($workspace: ID!) { workspace(id: $workspace) { targetRoots { name uri } } }"


def conflicts(
    monkeypatch: pytest.MonkeyPatch,
    error: type[psycopg.Error],
    times: int,
    store: object = task_store,
    function: str = "record_events",
) -> list[int]:
    """Make the store's `function` (recording events, unless told) fail with the database's
    `error` the first `times` calls (a fault injected on purpose); returns a list that
    counts every call."""
    calls: list[int] = []
    original = getattr(store, function)

    async def failing(*args: Any) -> Any:
        calls.append(len(calls))
        if len(calls) <= times:
            raise OperationalError(f"{function} ...", {}, error("injected"))
        return await original(*args)

    monkeypatch.setattr(store, function, failing)
    return calls


async def test_a_deadlocked_mutation_runs_again_and_records_once(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace = await api.workspace_id()
    await api(REGISTER, workspace=workspace, tasks=[task("a")])
    calls = conflicts(monkeypatch, psycopg.errors.DeadlockDetected, times=2)

    first = await api(RECORD, workspace=workspace, events=[event_input("e1", "TASK_RUNNING", "a")])
    again = await api(RECORD, workspace=workspace, events=[event_input("e1", "TASK_RUNNING", "a")])

    assert len(calls) == 4  # two conflicts, the run that wrote, and the resend
    assert first["recordEvents"] == {"recorded": 1, "duplicates": 0}
    assert again["recordEvents"] == {"recorded": 0, "duplicates": 1}


async def test_a_deadlocked_management_mutation_runs_again(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace = await api.workspace_id()
    deadlocked = psycopg.errors.DeadlockDetected
    calls = conflicts(monkeypatch, deadlocked, 2, organization_store, "set_target_root")

    data = await api(SET_ROOT, workspace=workspace, name="models", uri="s3://bucket/models")

    assert len(calls) == 3
    assert data["setTargetRoot"] == {"name": "models", "uri": "s3://bucket/models"}
    roots = await api(ROOTS, workspace=workspace)
    assert {"name": "models", "uri": "s3://bucket/models"} in roots["workspace"]["targetRoots"]


@pytest.mark.parametrize(
    ("error", "attempts"),
    [
        (psycopg.errors.SerializationFailure, CONFLICT_ATTEMPTS),  # a conflict every time
        (psycopg.errors.AdminShutdown, 1),  # not a conflict: not run again
    ],
    ids=["conflict-persists", "other-error"],
)
async def test_a_database_error_is_an_internal_error_once_the_attempts_are_used(
    api: Api, monkeypatch: pytest.MonkeyPatch, error: type[psycopg.Error], attempts: int
) -> None:
    workspace = await api.workspace_id()
    await api(REGISTER, workspace=workspace, tasks=[task("a")])
    calls = conflicts(monkeypatch, error, times=attempts)

    refused = await api.error(
        RECORD, workspace=workspace, events=[event_input("e1", "TASK_RUNNING", "a")]
    )

    assert len(calls) == attempts
    assert refused.extensions is not None
    assert refused.extensions["code"] == "INTERNAL_SERVER_ERROR"
