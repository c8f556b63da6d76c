"""Fuzzing every query and mutation with schemathesis: no input makes the registry fail.

Client mistakes (a malformed id, a value out of range, an unknown task) are fine as long as
the registry answers them as client errors; what must never happen is a server error: an
HTTP 5xx, or a GraphQL error the registry masked as `INTERNAL_SERVER_ERROR`.

The registry runs under uvicorn, which runs its lifespan on its own event loop, and
schemathesis reaches it over loopback HTTP, reading the schema from its printed SDL. A few
real objects are recorded first, and generated `ID`s are drawn from their ids as well as from
arbitrary and ill-typed ones, so the fuzzer gets past the id checks into the resolvers.

Inputs that once broke the registry (NUL characters, timestamps at the ends of the calendar
or without a timezone, integers beyond 64 bits) are pinned below as explicit examples, and
the strategies keep generating their kind.
"""

import asyncio
import base64
import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
import schemathesis
from graphql import NameNode, ObjectFieldNode, ValueNode
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, positive_data_acceptance
from schemathesis.graphql import nodes

from stardag_graphql.app import create_app
from stardag_graphql.migrations import ensure_schema
from stardag_graphql.schema import schema
from stardag_graphql.settings import Settings
from tests.conftest import serving
from tests.graphql.conftest import postgresql_database

# Type names for made-up global ids: the registry's node types, and types that are no nodes.
NODE_TYPES = ("Build", "Task", "Workspace", "Organization", "User", "Event")
INT64 = 2**63

registry_api = schemathesis.graphql.from_file(schema.as_str())
# Invalid documents (the negative mode) stop in graphql-core's validation, before the
# registry's code: the examples are spent on valid ones, which reach the resolvers.
registry_api.config.generation.update(modes=[GenerationMode.POSITIVE], allow_x00=True)


@dataclass(frozen=True)
class Served:
    """The registry under test: its URL, its kind of database, and its seeded workspace."""

    url: str
    database: str
    workspace: str


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """The registry under uvicorn on a fresh database, seeded with objects the fuzzer knows.

    One per database for the whole module: the fuzzer's writes pile up, and the operations
    fuzzed later read them.
    """
    with fresh_database(request, tmp_path_factory) as database_url:
        settings = Settings(database_url=database_url)
        asyncio.run(ensure_schema(settings))
        with serving(create_app(settings)) as url:
            with httpx.Client(base_url=url) as client:
                workspace, others = seed(client)
            schemathesis.graphql.scalar("ID", ids(workspace, others).map(nodes.String))
            schemathesis.graphql.scalar("DateTime", datetimes().map(nodes.String))
            schemathesis.graphql.scalar("JSON", json_values())
            yield Served(url, request.param, workspace)


@settings(max_examples=20, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@registry_api.parametrize()
def test_no_input_makes_the_registry_fail(case: schemathesis.Case[Any], served: Served) -> None:
    # Refusing a generated input (an id of another type, a value out of range) is right, so
    # `positive_data_acceptance` is off; `no_server_error` replaces `not_a_server_error`.
    case.call_and_validate(
        base_url=f"{served.url}/graphql",
        excluded_checks=[not_a_server_error, positive_data_acceptance],
        additional_checks=[no_server_error],
    )


@pytest.mark.parametrize(
    "query",
    [
        pytest.param(
            'query { organization(slug: "acme\\u0000") { slug } }',
            id="NUL in a string argument",
        ),
        pytest.param(
            """mutation($w: ID!) { registerTasks(workspaceId: $w, tasks: [
                {taskId: "nul", name: "Nul", parameters: {note: "a\\u0000b"}}]) { registered } }""",
            id="NUL in a JSON string",
        ),
        pytest.param(
            'query($w: ID!) { workspace(id: $w) { filterValues(key: "rows\\u0000") } }',
            id="NUL in a parameter key",
        ),
        pytest.param(
            """mutation($w: ID!) { recordEvents(workspaceId: $w, events: [{eventId: "early",
                kind: BUILD_STARTED, occurredAt: "0001-01-01T00:00:00+05:00"}]) { recorded } }""",
            id="a timestamp before year 1 in UTC",
        ),
        pytest.param(
            """query($w: ID!) { workspace(id: $w) {
                tasks(filter: {createdBefore: "9999-12-31T23:00:00-05:00"}) { totalCount } } }""",
            id="a timestamp after year 9999 in UTC",
        ),
        pytest.param(
            """query($w: ID!) { workspace(id: $w) {
                tasks(filter: {createdAfter: "2026-01-02T03:04:05"}) { totalCount } } }""",
            id="a timestamp without a timezone in a task filter",
        ),
        pytest.param(
            f"""query($w: ID!) {{ workspace(id: $w) {{ tasks(filter: {{
                parameters: [{{path: "rows", equals: {INT64}}}]}}) {{ totalCount }} }} }}""",
            id="an integer beyond signed 64 bits in a parameter condition",
        ),
    ],
)
def test_edge_case_inputs_are_client_errors(served: Served, query: str) -> None:
    variables = {"w": served.workspace} if "$w" in query else {}

    answer = httpx.post(f"{served.url}/graphql", json={"query": query, "variables": variables})

    assert answer.status_code == 200
    assert server_errors(answer.json()) == []


def no_server_error(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case[Any]
) -> bool | None:
    """Fail on an HTTP 5xx, and on any GraphQL error the registry masked as unexpected.

    schemathesis' own `not_a_server_error` takes any error at a path for a server error
    unless its code is one Apollo Server uses, so it would flag the registry's `NOT_FOUND`.
    """
    assert response.status_code < 500, f"HTTP {response.status_code}: {response.text[:500]}"
    if response.headers.get("content-type", [""])[0].startswith("application/json"):
        failed = server_errors(response.json())
        assert not failed, f"the registry failed (its log has the request ids): {failed}"
    return None


def server_errors(answer: object) -> list[dict[str, Any]]:
    """The errors of a GraphQL answer that the registry masked as unexpected."""
    errors = answer.get("errors") if isinstance(answer, dict) else None
    return [
        error
        for error in errors or []
        if (error.get("extensions") or {}).get("code") == "INTERNAL_SERVER_ERROR"
    ]


def texts() -> st.SearchStrategy[str]:
    """Any string, NUL characters included."""
    return st.text()


def ids(workspace: str, others: Sequence[str]) -> st.SearchStrategy[str]:
    """Global ids: the seeded workspace's (which most arguments want), the other seeded
    objects', and ids of objects that do not exist or that are malformed."""

    def global_id(type_name: str, node_id: str) -> str:
        return base64.b64encode(f"{type_name}:{node_id}".encode()).decode()

    return st.one_of(
        st.just(workspace),
        st.sampled_from(others),
        st.builds(global_id, st.sampled_from(NODE_TYPES), st.uuids().map(str) | texts()),
        texts(),
    )


def datetimes() -> st.SearchStrategy[str]:
    """ISO 8601 timestamps at any offset, and strings that are not timestamps."""
    offsets = st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23))
    moments = st.datetimes(timezones=st.none() | st.just(UTC) | offsets.map(timezone))
    return moments.map(datetime.isoformat) | texts()


def json_values() -> st.SearchStrategy[ValueNode]:
    """Any JSON value, as a GraphQL literal."""
    scalars = st.one_of(
        st.just(nodes.Null),
        st.booleans().map(nodes.Boolean),
        st.integers(min_value=-(INT64**2), max_value=INT64**2).map(nodes.Int),
        st.floats(allow_nan=False, allow_infinity=False).map(nodes.Float),
        texts().map(nodes.String),
    )
    names = st.from_regex(r"[_A-Za-z][_0-9A-Za-z]{0,10}", fullmatch=True)

    def objects(fields: dict[str, ValueNode]) -> ValueNode:
        return nodes.Object(
            [
                ObjectFieldNode(name=NameNode(value=name), value=value)
                for name, value in fields.items()
            ]
        )

    return st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=4).map(nodes.List)
            | st.dictionaries(names, children, max_size=4).map(objects)
        ),
        max_leaves=10,
    )


def seed(client: httpx.Client) -> tuple[str, list[str]]:
    """Record two builds, tasks, events, a lock, an asset and logs: the workspace's global id,
    and those of the organization, the builds and the tasks."""

    def run(query: str, **variables: Any) -> dict[str, Any]:
        answer = client.post("/graphql", json={"query": query, "variables": variables}).json()
        assert "errors" not in answer, answer["errors"]
        data: dict[str, Any] = answer["data"]
        return data

    organization = run("{ organizations { id workspaces { id } } }")["organizations"][0]
    workspace = organization["workspaces"][0]["id"]
    start = "mutation($w: ID!) { startBuild(workspaceId: $w) { id } }"
    build = run(start, w=workspace)["startBuild"]["id"]
    finished = run(start, w=workspace)["startBuild"]["id"]
    run(
        """mutation($w: ID!, $b: ID, $tasks: [TaskInput!]!) {
            registerTasks(workspaceId: $w, buildId: $b, tasks: $tasks, rootTaskIds: ["train"]) {
              registered } }""",
        w=workspace,
        b=build,
        tasks=[
            {"taskId": "prepare", "name": "Prepare", "parameters": {"rows": 10}},
            {"taskId": "train", "name": "Train", "dependencies": ["prepare"]},
        ],
    )
    run(
        """mutation($w: ID!, $b: ID!, $f: ID!) {
            recordEvents(workspaceId: $w, events: [
              {eventId: "e1", kind: TASK_RUNNING, taskId: "prepare", buildId: $b,
               occurredAt: "2026-01-02T03:04:05Z"},
              {eventId: "e2", kind: TASK_COMPLETED, taskId: "prepare", buildId: $b,
               occurredAt: "2026-01-02T03:04:06Z"}]) { recorded }
            acquireLock(workspaceId: $w, key: "train", holder: "seed", ttlSeconds: 600) {
              acquired }
            putAsset(workspaceId: $w, taskId: "train", name: "report", kind: MARKDOWN,
                     body: "# Report") { name }
            appendLogs(workspaceId: $w, taskId: "train", buildId: $b,
                       lines: [{seq: 1, text: "hello", loggedAt: "2026-01-02T03:04:05Z"}]) {
              appended }
            finishBuild(buildId: $f, status: FAILED) { status } }""",
        w=workspace,
        b=build,
        f=finished,
    )
    tasks = run("query($w: ID!) { workspace(id: $w) { tasks { nodes { id } } } }", w=workspace)
    task_ids = [task["id"] for task in tasks["workspace"]["tasks"]["nodes"]]
    return workspace, [organization["id"], build, finished, *task_ids]


@contextlib.contextmanager
def fresh_database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """An empty database of the kind `request.param` names, as the `database_url` fixture
    makes, but for a whole module."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('fuzz') / 'registry.db'}"
        return
    with postgresql_database(request.getfixturevalue("pg_url"), "fuzz") as url:
        yield url
