"""Two organizations whose workspaces hold the same task ids: neither ever sees the other's rows.

Tenants A and B each register the chain `shared-1` <- `shared-2` <- `shared-3` (`shared-3`
needs `shared-2`, which needs `shared-1`) in their build, with their own parameters and output
URIs; B's chain goes on to `shared-4`, and B's parameters carry a key of their own. Every test
acts as A, once with a member's registry token and once with A's API key, on a registry in
server mode over SQLite and PostgreSQL, and shows that nothing of B is returned or changed:
B's ids read exactly like made-up ones, and B's rows never show among A's.
"""

import asyncio
import contextlib
import ssl
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from gql import Client, GraphQLRequest
from gql.client import AsyncClientSession
from gql.transport.exceptions import TransportQueryError
from gql.transport.websockets import WebsocketsTransport
from strawberry.relay import to_base64

from stardag_graphql.settings import Settings
from tests.graphql.conftest import (
    RECORD,
    REGISTER,
    fresh_database,
    server_mode_at,
    server_settings,
    serving_settings,
)
from tests.graphql.tenants import ServerMode, Tenant, make_tenant
from tests.identity_provider import IdentityProvider

# Seconds any single subscription step may take before the test fails instead of hanging.
TIMEOUT = 10

NODE = "query($id: ID!) { node(id: $id) { id } }"
WORKSPACE = "query($workspace: ID!) { workspace(id: $workspace) { id slug } }"
TASK = """
query($workspace: ID!, $taskId: String!) {
  workspace(id: $workspace) {
    task(taskId: $taskId) { id taskId parameters outputUri status }
  }
}
"""
TASKS = """
query($workspace: ID!, $filter: TaskFilter) {
  workspace(id: $workspace) {
    tasks(filter: $filter, first: 100) { totalCount nodes { taskId parameters outputUri } }
  }
}
"""
AUTOCOMPLETE = """
query($workspace: ID!, $filter: TaskFilter) {
  workspace(id: $workspace) {
    keys: filterKeys(filter: $filter)
    tenants: filterValues(key: "tenant", filter: $filter)
    steps: filterValues(key: "step", filter: $filter)
    secrets: filterValues(key: "onlyB", filter: $filter)
  }
}
"""
BUILDS = """
query($workspace: ID!, $build: ID!) {
  workspace(id: $workspace) {
    builds(first: 100) { totalCount nodes { id name } }
    build(id: $build) {
      id
      rootTasks { taskId parameters outputUri }
      tasks(first: 100) { nodes { taskId parameters outputUri } }
    }
  }
}
"""
LINEAGE = """
query($workspace: ID!, $taskId: String!) {
  workspace(id: $workspace) {
    task(taskId: $taskId) {
      upstream { ...Walk }
      downstream { ...Walk }
      dependencies { taskId parameters }
      dependents { taskId parameters }
    }
  }
}
fragment Walk on LineageResult {
  ... on Lineage {
    nodes { taskId depth task { id parameters outputUri } }
    edges { upstream downstream }
  }
}
"""
PUT_ASSET = """
mutation($workspace: ID!) {
  putAsset(workspaceId: $workspace, taskId: "shared-2", name: "report", kind: MARKDOWN,
           body: "# written by A") { name }
}
"""
APPEND_LOGS = """
mutation($workspace: ID!, $lines: [LogLineInput!]!) {
  appendLogs(workspaceId: $workspace, taskId: "shared-2", lines: $lines) { appended }
}
"""
SHARED_TASK_STATE = """
query($workspace: ID!) {
  workspace(id: $workspace) {
    tasks { totalCount }
    task(taskId: "shared-2") {
      parameters outputUri status
      assets { name body }
      logs { text }
      events { nodes { eventId kind } }
    }
  }
}
"""
ACQUIRE = """
mutation($workspace: ID!, $holder: String!) {
  acquireLock(workspaceId: $workspace, key: "k", holder: $holder, ttlSeconds: 60) {
    acquired lease { holder fencingToken }
  }
}
"""
RENEW = """
mutation($workspace: ID!, $holder: String!, $token: Int!) {
  renewLock(workspaceId: $workspace, key: "k", holder: $holder, fencingToken: $token,
            ttlSeconds: 60) { acquired }
}
"""
RELEASE = """
mutation($workspace: ID!, $holder: String!, $token: Int!) {
  releaseLock(workspaceId: $workspace, key: "k", holder: $holder, fencingToken: $token)
}
"""
LOCKS = "query($workspace: ID!) { workspace(id: $workspace) { locks { key holder } } }"
APPEND_BUILD_LOGS = """
mutation($workspace: ID!, $build: ID!) {
  appendLogs(workspaceId: $workspace, taskId: "shared-2", buildId: $build,
             lines: [{seq: 0, text: "written by A", loggedAt: "2026-11-22T12:00:00+00:00"}]) {
    appended
  }
}
"""
RECORD_UNDER_LOCK = """
mutation($workspace: ID!, $events: [EventInput!]!) {
  recordEventsUnderLock(workspaceId: $workspace, key: "k", holder: "a-worker", fencingToken: 1,
                        events: $events)
}
"""
TASK_CHANGES = """
subscription($workspace: ID!) {
  taskStatusChanged(workspaceId: $workspace) { id taskId status parameters }
}
"""
BUILD_EVENTS = """
subscription($build: ID!) { buildEvents(buildId: $build) { event { eventId } } }
"""

NOW = "2026-11-22T12:00:00+00:00"

# httpx builds a TLS context, CA bundle and all, for every client not given one; the registry
# is plain HTTP on loopback, so the test's clients share this one instead.
TLS = ssl.create_default_context()


def chain(tenant: str) -> list[dict[str, Any]]:
    """The tasks `tenant` registers: the shared chain, and for B one task more."""
    names = ["Extract", "Transform", "Load", "Publish"][: 4 if tenant == "B" else 3]
    return [
        task_of(tenant, step)
        | {"name": name, "dependencies": [f"shared-{step - 1}"] if step > 1 else []}
        for step, name in enumerate(names, start=1)
    ]


def task_of(tenant: str, step: int) -> dict[str, Any]:
    """`tenant`'s task `shared-<step>` as it reads: task id, parameters and output URI."""
    return {
        "taskId": f"shared-{step}",
        "parameters": parameters(tenant, step),
        "outputUri": f"s3://{tenant.lower()}-bucket/shared-{step}",
    }


def parameters(tenant: str, step: int) -> dict[str, Any]:
    """The parameters of `tenant`'s task `shared-<step>`; B's carry a key A's never have."""
    return {"tenant": tenant, "step": step} | ({"onlyB": f"b-{step}"} if tenant == "B" else {})


def event(event_id: str, kind: str, task_id: str) -> dict[str, Any]:
    """An `EventInput` for a task."""
    return {"eventId": event_id, "kind": kind, "taskId": task_id, "occurredAt": NOW}


def made_up(type_name: str) -> str:
    """A well-formed global id of `type_name` that names nothing."""
    return to_base64(type_name, uuid.uuid4())


def hiding(global_id: str, error: dict[str, Any]) -> dict[str, Any]:
    """`error` with `global_id` in its message replaced, to compare it with another id's."""
    return error | {"message": error["message"].replace(global_id, "<id>")}


@dataclass
class Caller:
    """Someone calling the registry with one credential, over HTTP or a websocket."""

    http: httpx.AsyncClient
    credential: str

    async def __call__(self, document: str, **variables: Any) -> dict[str, Any]:
        """The data of an operation; fails the test on any error."""
        body = await self.post(document, variables)
        assert "errors" not in body, body
        return dict(body["data"])

    async def error(self, document: str, **variables: Any) -> dict[str, Any]:
        """The one error an operation gives."""
        body = await self.post(document, variables)
        assert len(body.get("errors") or []) == 1, body
        return dict(body["errors"][0])

    async def post(self, document: str, variables: dict[str, Any]) -> dict[str, Any]:
        """The JSON answer to an operation."""
        response = await self.http.post(
            "/graphql",
            json={"query": document, "variables": variables},
            headers={"Authorization": f"Bearer {self.credential}"},
        )
        return dict(response.json())

    @contextlib.asynccontextmanager
    async def websocket(self) -> AsyncIterator[AsyncClientSession]:
        """A gql session on the registry's websocket, authenticated by the upgrade request."""
        transport = WebsocketsTransport(
            url=str(self.http.base_url.copy_with(scheme="ws", path="/graphql")),
            headers={"Authorization": f"Bearer {self.credential}"},
            subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
        )
        async with Client(transport=transport, execute_timeout=TIMEOUT) as session:
            assert isinstance(session, AsyncClientSession)
            yield session


async def make_tenant_with_chain(
    server: ServerMode, http: httpx.AsyncClient, tenant: str
) -> Tenant:
    """An organization whose workspace holds `chain(tenant)`, registered in its build."""
    created = await make_tenant(server.sessions, f"{tenant.lower()}-{uuid.uuid4().hex[:8]}")
    await Caller(http, server.token(created, "member"))(
        REGISTER,
        workspace=created.workspace,
        tasks=chain(tenant),
        build=created.build,
        roots=["shared-3"],
    )
    return created


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def registry_url(
    request: pytest.FixtureRequest,
    identity_provider: IdentityProvider,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, Settings]]:
    """One registry in server mode on each kind of database for the whole module: every test
    makes its own two tenants, so tests share no rows but skip starting a server each."""
    key_file = tmp_path_factory.mktemp("tenants") / "key.pem"
    with fresh_database(request, tmp_path_factory) as database_url:
        settings = server_settings(database_url, identity_provider, key_file)
        with serving_settings(settings) as url:
            yield url, settings


@pytest.fixture
async def server_mode(registry_url: tuple[str, Settings]) -> AsyncIterator[ServerMode]:
    """The module's registry, with sessions on its database in this test's event loop."""
    url, settings = registry_url
    async with server_mode_at(url, settings) as server:
        yield server


@pytest.fixture
async def http(server_mode: ServerMode) -> AsyncIterator[httpx.AsyncClient]:
    """One HTTP client for the test's requests (a client per request costs more than one)."""
    async with httpx.AsyncClient(base_url=server_mode.url, timeout=30, verify=TLS) as client:
        yield client


@pytest.fixture
async def b(server_mode: ServerMode, http: httpx.AsyncClient) -> Tenant:
    """Tenant B: the other organization."""
    return await make_tenant_with_chain(server_mode, http, "B")


@pytest.fixture
async def a(server_mode: ServerMode, http: httpx.AsyncClient, b: Tenant) -> Tenant:
    """Tenant A, the caller's organization; B, with the same task ids, is always there too."""
    return await make_tenant_with_chain(server_mode, http, "A")


@pytest.fixture(params=["member", "api_key"])
def as_a(
    request: pytest.FixtureRequest, server_mode: ServerMode, http: httpx.AsyncClient, a: Tenant
) -> Caller:
    """A's member with a registry token, or A's workspace API key."""
    if request.param == "member":
        return Caller(http, server_mode.token(a, "member"))
    return Caller(http, a.api_key)


@pytest.fixture
def as_b(server_mode: ServerMode, http: httpx.AsyncClient, b: Tenant) -> Caller:
    """B's member, to look at B's side."""
    return Caller(http, server_mode.token(b, "member"))


# Reads


async def test_b_workspace_reads_as_missing(a: Tenant, b: Tenant, as_a: Caller) -> None:
    own = await as_a(WORKSPACE, workspace=a.workspace)
    foreign = await as_a(WORKSPACE, workspace=b.workspace)

    assert own == {"workspace": {"id": a.workspace, "slug": "default"}}
    assert foreign == {"workspace": None}


async def test_b_objects_read_as_missing_by_global_id(
    a: Tenant, b: Tenant, as_a: Caller, as_b: Caller
) -> None:
    a_task = (await as_a(TASK, workspace=a.workspace, taskId="shared-2"))["workspace"]["task"]
    b_task = (await as_b(TASK, workspace=b.workspace, taskId="shared-2"))["workspace"]["task"]
    own = [a.workspace, a.organization, a.build, a_task["id"]]
    foreign = [b.workspace, b.organization, b.build, b_task["id"]]

    assert [(await as_a(NODE, id=node))["node"] for node in own] == [{"id": node} for node in own]
    assert [(await as_a(NODE, id=node))["node"] for node in foreign] == [None] * 4


async def test_a_shared_task_id_reads_as_a_own_task(a: Tenant, as_a: Caller) -> None:
    data = await as_a(TASK, workspace=a.workspace, taskId="shared-2")

    task = data["workspace"]["task"]
    assert task["parameters"] == {"tenant": "A", "step": 2}
    assert task["outputUri"] == "s3://a-bucket/shared-2"


async def test_b_only_task_id_reads_as_missing_in_a(a: Tenant, as_a: Caller) -> None:
    data = await as_a(TASK, workspace=a.workspace, taskId="shared-4")

    assert data == {"workspace": {"task": None}}


async def test_the_task_list_holds_only_a_rows(a: Tenant, as_a: Caller) -> None:
    data = await as_a(TASKS, workspace=a.workspace)

    tasks = data["workspace"]["tasks"]
    assert by_task_id(tasks["nodes"]) == [
        task_of("A", 1),
        task_of("A", 2),
        task_of("A", 3),
        {"taskId": "t1", "parameters": {}, "outputUri": None},
    ]
    assert tasks["totalCount"] == 4


@pytest.mark.parametrize(
    ("task_filter", "steps"),
    [
        ({"search": "shared"}, [1, 2, 3]),
        ({"search": "Publish"}, []),
        ({"parameters": [{"path": "tenant", "equals": "A"}]}, [1, 2, 3]),
        ({"parameters": [{"path": "tenant", "equals": "B"}]}, []),
        ({"parameters": [{"path": "onlyB", "equals": "b-2"}]}, []),
        ({"parameters": [{"path": "step", "equals": 4}]}, []),
    ],
    ids=["by-id", "b-name", "a-parameter", "b-parameter", "b-key", "b-value"],
)
async def test_searching_tasks_finds_only_a_rows(
    a: Tenant, as_a: Caller, task_filter: dict[str, Any], steps: list[int]
) -> None:
    data = await as_a(TASKS, workspace=a.workspace, filter=task_filter)

    tasks = data["workspace"]["tasks"]
    assert by_task_id(tasks["nodes"]) == [task_of("A", step) for step in steps]
    assert tasks["totalCount"] == len(steps)


async def test_filtering_by_b_build_finds_nothing(a: Tenant, b: Tenant, as_a: Caller) -> None:
    own = await as_a(TASKS, workspace=a.workspace, filter={"buildId": a.build})
    foreign = await as_a(TASKS, workspace=a.workspace, filter={"buildId": b.build})

    assert own["workspace"]["tasks"]["totalCount"] == 3
    assert foreign["workspace"]["tasks"] == {"totalCount": 0, "nodes": []}


@pytest.mark.parametrize(
    "task_filter",
    [None, {"parameters": [{"path": "tenant", "equals": "B"}]}],
    ids=["all", "b-parameter"],
)
async def test_autocomplete_offers_only_a_keys_and_values(
    a: Tenant, as_a: Caller, task_filter: dict[str, Any] | None
) -> None:
    data = await as_a(AUTOCOMPLETE, workspace=a.workspace, filter=task_filter)

    if task_filter is None:
        expected = {"keys": ["step", "tenant"], "tenants": ["A"], "steps": ["1", "2", "3"]}
    else:
        expected = {"keys": [], "tenants": [], "steps": []}
    assert data["workspace"] == expected | {"secrets": []}


async def test_the_build_list_holds_only_a_builds(a: Tenant, b: Tenant, as_a: Caller) -> None:
    own = await as_a(BUILDS, workspace=a.workspace, build=a.build)
    foreign = await as_a(BUILDS, workspace=a.workspace, build=b.build)

    assert own["workspace"]["builds"] == {
        "totalCount": 1,
        "nodes": [{"id": a.build, "name": "nightly"}],
    }
    build = own["workspace"]["build"]
    assert build["id"] == a.build
    assert build["rootTasks"] == [task_of("A", 3)]
    assert by_task_id(build["tasks"]["nodes"]) == [task_of("A", step) for step in (1, 2, 3)]
    assert foreign["workspace"]["build"] is None


# Lineage


async def test_the_upstream_of_a_task_holds_only_a_rows(a: Tenant, as_a: Caller) -> None:
    data = await as_a(LINEAGE, workspace=a.workspace, taskId="shared-3")

    task = data["workspace"]["task"]
    assert walked(task["upstream"]) == [("shared-2", 1, "A"), ("shared-1", 2, "A")]
    assert task["upstream"]["edges"] == [
        {"upstream": "shared-1", "downstream": "shared-2"},
        {"upstream": "shared-2", "downstream": "shared-3"},
    ]
    assert task["dependencies"] == [{"taskId": "shared-2", "parameters": parameters("A", 2)}]
    assert task["downstream"] == {"nodes": [], "edges": []}, "B's shared-4 needs B's shared-3"
    assert task["dependents"] == []


async def test_the_downstream_of_a_task_holds_only_a_rows(a: Tenant, as_a: Caller) -> None:
    data = await as_a(LINEAGE, workspace=a.workspace, taskId="shared-1")

    task = data["workspace"]["task"]
    assert walked(task["downstream"]) == [("shared-2", 1, "A"), ("shared-3", 2, "A")]
    assert task["downstream"]["edges"] == [
        {"upstream": "shared-1", "downstream": "shared-2"},
        {"upstream": "shared-2", "downstream": "shared-3"},
    ]
    assert task["dependents"] == [{"taskId": "shared-2", "parameters": parameters("A", 2)}]
    assert task["upstream"] == {"nodes": [], "edges": []}
    assert task["dependencies"] == []


def by_task_id(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`tasks` sorted by task id."""
    return sorted(tasks, key=lambda task: str(task["taskId"]))


def walked(lineage: dict[str, Any]) -> list[tuple[str, int, str]]:
    """A lineage's nodes as (task id, depth, tenant), checking each is that tenant's task."""
    nodes = []
    for node in lineage["nodes"]:
        tenant = node["task"]["parameters"]["tenant"]
        step = int(node["taskId"].removeprefix("shared-"))
        assert node["task"]["parameters"] == parameters(tenant, step)
        assert node["task"]["outputUri"] == f"s3://{tenant.lower()}-bucket/{node['taskId']}"
        nodes.append((node["taskId"], node["depth"], tenant))
    return nodes


# Writes

WRITES: dict[str, tuple[str, Callable[[str], dict[str, Any]]]] = {
    "registerTasks": (
        REGISTER,
        lambda workspace: {
            "workspace": workspace,
            "tasks": [
                {"taskId": "shared-2", "name": "Transform", "outputUri": "s3://a-bucket/moved"},
                {"taskId": "a-new", "name": "New"},
            ],
        },
    ),
    "recordEvents": (
        RECORD,
        lambda workspace: {
            "workspace": workspace,
            "events": [event("e1", "TASK_COMPLETED", "shared-2")],
        },
    ),
    "putAsset": (PUT_ASSET, lambda workspace: {"workspace": workspace}),
    "appendLogs": (
        APPEND_LOGS,
        lambda workspace: {
            "workspace": workspace,
            "lines": [{"seq": 1, "text": "written by A", "loggedAt": NOW}],
        },
    ),
}

# B's shared-2 as B's member reads it when nobody else wrote to it.
B_SHARED_2_UNTOUCHED = {
    "tasks": {"totalCount": 5},
    "task": {
        "parameters": parameters("B", 2),
        "outputUri": "s3://b-bucket/shared-2",
        "status": "PENDING",
        "assets": [],
        "logs": [],
        "events": {"nodes": []},
    },
}


@pytest.mark.parametrize("write", sorted(WRITES))
async def test_writing_to_b_workspace_is_refused_as_if_it_did_not_exist(
    b: Tenant, as_a: Caller, as_b: Caller, write: str
) -> None:
    document, variables = WRITES[write]
    nowhere = made_up("Workspace")

    refused = await as_a.error(document, **variables(b.workspace))
    missing = await as_a.error(document, **variables(nowhere))

    assert refused["extensions"] == {"code": "NOT_FOUND"}
    assert hiding(b.workspace, refused) == hiding(nowhere, missing)
    state = await as_b(SHARED_TASK_STATE, workspace=b.workspace)
    assert state["workspace"] == B_SHARED_2_UNTOUCHED


@pytest.mark.parametrize("write", sorted(WRITES))
async def test_writing_to_a_shared_task_id_changes_only_a_task(
    a: Tenant, b: Tenant, as_a: Caller, as_b: Caller, write: str
) -> None:
    document, variables = WRITES[write]

    await as_a(document, **variables(a.workspace))

    state = await as_b(SHARED_TASK_STATE, workspace=b.workspace)
    assert state["workspace"] == B_SHARED_2_UNTOUCHED


async def test_an_event_for_a_shared_task_id_changes_only_a_status(
    a: Tenant, b: Tenant, as_a: Caller, as_b: Caller
) -> None:
    recorded = await as_a(
        RECORD, workspace=a.workspace, events=[event("e1", "TASK_COMPLETED", "shared-2")]
    )

    a_task = await as_a(TASK, workspace=a.workspace, taskId="shared-2")
    b_task = await as_b(TASK, workspace=b.workspace, taskId="shared-2")
    assert recorded == {"recordEvents": {"recorded": 1, "duplicates": 0}}
    assert a_task["workspace"]["task"]["status"] == "COMPLETED"
    assert b_task["workspace"]["task"]["status"] == "PENDING"


async def test_event_ids_are_per_workspace(
    a: Tenant, b: Tenant, as_a: Caller, as_b: Caller
) -> None:
    await as_a(RECORD, workspace=a.workspace, events=[event("e1", "TASK_COMPLETED", "shared-2")])

    in_b = await as_b(
        RECORD, workspace=b.workspace, events=[event("e1", "TASK_FAILED", "shared-2")]
    )

    assert in_b == {"recordEvents": {"recorded": 1, "duplicates": 0}}, "A's e1 is not B's"
    b_task = await as_b(TASK, workspace=b.workspace, taskId="shared-2")
    assert b_task["workspace"]["task"]["status"] == "FAILED"


# Locks


async def test_lock_keys_are_per_workspace(
    a: Tenant, b: Tenant, as_a: Caller, as_b: Caller
) -> None:
    in_a = await as_a(ACQUIRE, workspace=a.workspace, holder="a-worker")
    in_b = await as_b(ACQUIRE, workspace=b.workspace, holder="b-worker")

    a_locks = await as_a(LOCKS, workspace=a.workspace)
    b_locks = await as_b(LOCKS, workspace=b.workspace)
    assert in_a["acquireLock"] == {
        "acquired": True,
        "lease": {"holder": "a-worker", "fencingToken": 1},
    }
    assert in_b["acquireLock"] == {
        "acquired": True,
        "lease": {"holder": "b-worker", "fencingToken": 1},
    }
    assert a_locks["workspace"]["locks"] == [{"key": "k", "holder": "a-worker"}]
    assert b_locks["workspace"]["locks"] == [{"key": "k", "holder": "b-worker"}]


@pytest.mark.parametrize(
    ("document", "variables"),
    [
        (ACQUIRE, {"holder": "b-worker"}),
        (RENEW, {"holder": "b-worker", "token": 1}),
        (RELEASE, {"holder": "b-worker", "token": 1}),
    ],
    ids=["acquire", "renew", "release"],
)
async def test_b_lock_cannot_be_touched_from_a(
    b: Tenant, as_a: Caller, as_b: Caller, document: str, variables: dict[str, Any]
) -> None:
    await as_b(ACQUIRE, workspace=b.workspace, holder="b-worker")
    nowhere = made_up("Workspace")

    refused = await as_a.error(document, workspace=b.workspace, **variables)
    missing = await as_a.error(document, workspace=nowhere, **variables)

    assert refused["extensions"] == {"code": "NOT_FOUND"}
    assert hiding(b.workspace, refused) == hiding(nowhere, missing)
    b_locks = await as_b(LOCKS, workspace=b.workspace)
    assert b_locks["workspace"]["locks"] == [{"key": "k", "holder": "b-worker"}]


# Each way a report names a build, with B's build in A's own workspace.
BUILD_REPORTS: dict[str, tuple[str, Callable[[str, str], dict[str, Any]]]] = {
    "registerTasks": (
        REGISTER,
        lambda workspace, build: {
            "workspace": workspace,
            "tasks": [{"taskId": "a-new", "name": "New"}],
            "build": build,
        },
    ),
    "recordEvents": (
        RECORD,
        lambda workspace, build: {
            "workspace": workspace,
            "events": [event("e1", "TASK_COMPLETED", "shared-2") | {"buildId": build}],
        },
    ),
    "recordEventsUnderLock": (
        RECORD_UNDER_LOCK,
        lambda workspace, build: {
            "workspace": workspace,
            "events": [event("e1", "TASK_COMPLETED", "shared-2") | {"buildId": build}],
        },
    ),
    "appendLogs": (
        APPEND_BUILD_LOGS,
        lambda workspace, build: {"workspace": workspace, "build": build},
    ),
}


@pytest.mark.parametrize("report", sorted(BUILD_REPORTS))
async def test_reporting_into_b_build_is_refused_as_if_it_did_not_exist(
    a: Tenant, b: Tenant, as_a: Caller, as_b: Caller, report: str
) -> None:
    document, variables = BUILD_REPORTS[report]
    await as_a(ACQUIRE, workspace=a.workspace, holder="a-worker")
    a_before = await as_a(SHARED_TASK_STATE, workspace=a.workspace)
    b_before = await as_b(BUILDS, workspace=b.workspace, build=b.build)

    refused = await as_a.error(document, **variables(a.workspace, b.build))
    missing = await as_a.error(document, **variables(a.workspace, made_up("Build")))

    assert refused["extensions"] == missing["extensions"] == {"code": "NOT_FOUND"}
    assert refused["message"].startswith("no build ")
    assert missing["message"].startswith("no build ")
    assert await as_a(SHARED_TASK_STATE, workspace=a.workspace) == a_before
    assert await as_b(BUILDS, workspace=b.workspace, build=b.build) == b_before
    a_locks = await as_a(LOCKS, workspace=a.workspace)
    assert a_locks["workspace"]["locks"] == [{"key": "k", "holder": "a-worker"}]


# Subscriptions


async def test_following_b_workspace_is_refused_as_if_it_did_not_exist(
    b: Tenant, as_a: Caller
) -> None:
    nowhere = made_up("Workspace")

    refused = await subscription_error(as_a, TASK_CHANGES, workspace=b.workspace)
    missing = await subscription_error(as_a, TASK_CHANGES, workspace=nowhere)

    assert refused["extensions"] == {"code": "NOT_FOUND"}
    assert hiding(b.workspace, refused) == hiding(nowhere, missing)


async def test_following_b_build_is_refused_as_if_it_did_not_exist(b: Tenant, as_a: Caller) -> None:
    nowhere = made_up("Build")

    refused = await subscription_error(as_a, BUILD_EVENTS, build=b.build)
    missing = await subscription_error(as_a, BUILD_EVENTS, build=nowhere)

    assert refused["extensions"] == {"code": "NOT_FOUND"}
    assert hiding(b.build, refused) == hiding(nowhere, missing)


async def test_following_a_workspace_shows_only_a_changes(
    a: Tenant, b: Tenant, as_a: Caller, as_b: Caller
) -> None:
    a_tasks = {
        task_id: (await as_a(TASK, workspace=a.workspace, taskId=task_id))["workspace"]["task"]
        for task_id in ("shared-2", "shared-3")
    }
    async with as_a.websocket() as websocket:
        changes = websocket.subscribe(
            GraphQLRequest(TASK_CHANGES, variable_values={"workspace": a.workspace})
        )
        # B's changes commit before A's last one: had they leaked, they would arrive first.
        received = asyncio.ensure_future(changes_until(changes, a_tasks["shared-3"]["id"]))
        await subscription_started()
        for caller, tenant, change in [
            (as_b, b, event("e1", "TASK_FAILED", "shared-2")),
            (as_a, a, event("e1", "TASK_RUNNING", "shared-2")),
            (as_b, b, event("e2", "TASK_CANCELLED", "shared-3")),
            (as_a, a, event("e2", "TASK_COMPLETED", "shared-3")),
        ]:
            await caller(RECORD, workspace=tenant.workspace, events=[change])
        seen = await received
        await changes.aclose()

    assert seen == [
        {
            "id": a_tasks["shared-2"]["id"],
            "taskId": "shared-2",
            "status": "RUNNING",
            "parameters": parameters("A", 2),
        },
        {
            "id": a_tasks["shared-3"]["id"],
            "taskId": "shared-3",
            "status": "COMPLETED",
            "parameters": parameters("A", 3),
        },
    ], "a change of B's tasks reached A's subscription"


async def subscription_error(caller: Caller, document: str, **variables: Any) -> dict[str, Any]:
    """The error a subscription ends with before it sends anything."""
    async with caller.websocket() as websocket:
        subscription = websocket.subscribe(GraphQLRequest(document, variable_values=variables))
        with pytest.raises(TransportQueryError) as refused:
            await asyncio.wait_for(anext(subscription), TIMEOUT)
    assert refused.value.errors is not None
    assert len(refused.value.errors) == 1, refused.value.errors
    return dict(refused.value.errors[0])


async def subscription_started() -> None:
    """Give a subscription just sent time to start: graphql-transport-ws acknowledges none."""
    await asyncio.sleep(0.3)


async def changes_until(
    subscription: AsyncIterator[dict[str, Any]], last: str
) -> list[dict[str, Any]]:
    """The tasks `taskStatusChanged` sends, up to the one with global id `last`."""

    async def collect() -> list[dict[str, Any]]:
        seen = []
        async for result in subscription:
            seen.append(result["taskStatusChanged"])
            if seen[-1]["id"] == last:
                return seen
        raise AssertionError(f"the subscription ended before {last} changed: {seen}")

    return await asyncio.wait_for(collect(), TIMEOUT)
