"""Fuzzing every query and mutation with schemathesis: no input makes the registry fail, and
no input shows a caller another organization's data.

Client mistakes (a malformed id, a value out of range, an unknown task) are fine as long as
the registry answers them as client errors; what must never happen is a server error: an
HTTP 5xx, or a GraphQL error the registry masked as `INTERNAL_SERVER_ERROR`.

The registry runs under uvicorn, which runs its lifespan on its own event loop, and
schemathesis reaches it over loopback HTTP, reading the schema from its printed SDL. A few
real objects are recorded first; most id arguments get the id of a recorded object of the
type they take (through schemathesis' dictionaries), the others a made-up or malformed one,
and slugs, task ids and keys are drawn partly from the recorded ones, so that the fuzzer gets
past the lookups into the resolvers.

The fuzzer runs twice: in local mode as the local user, and in server mode as a member of
organization `home`, with a registry token in every request. In server mode a second
organization holds builds, tasks, events, assets, logs, a lock, target roots, API keys, a
second workspace and invites whose names and values carry the marker `FOREIGN`; the fuzzer
is handed its ids, slug and task ids too. No answer may show the marker, one of its ids or an
API key prefix, except where an error message quotes what the request itself sent; and once
the fuzzer is done the foreign organization reads exactly as before.

Inputs that once broke the registry (NUL characters, timestamps at the ends of the calendar
or without a timezone, integers beyond 64 bits) are pinned below as explicit examples, and
the strategies keep generating their kind.
"""

import asyncio
import base64
import json
import uuid
from collections.abc import Iterable, Iterator, Sequence
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
from schemathesis.checks import CheckFunction, not_a_server_error, positive_data_acceptance
from schemathesis.config import SchemathesisConfig
from schemathesis.graphql import nodes
from strawberry.relay import from_base64

from stardag_graphql.schema import schema
from stardag_graphql.settings import Settings
from tests.graphql.conftest import (
    fresh_database,
    server_mode_at,
    server_settings,
    serving_settings,
)
from tests.graphql.tenants import Tenant, make_tenant
from tests.identity_provider import IdentityProvider

# Type names for made-up global ids: the registry's node types, and types that are no nodes.
NODE_TYPES = ("Build", "Task", "Workspace", "Organization", "Invite", "User", "Event")
INT64 = 2**63
SEEDED_TASKS = ("prepare", "train")

HOME = "home"
FOREIGN = f"foreign-{uuid.uuid4().hex}"
"""The marker in the foreign organization's slug, emails, names, ids and values (lowercase,
so that it fits a slug)."""
FOREIGN_PROBES = (f"org-{FOREIGN}", f"{FOREIGN}-t1", f"{FOREIGN}-prepare", f"{FOREIGN}-train")
"""The foreign organization's slug and task ids, which the server-mode fuzzer sends as its
reads' arguments (never as values to write, or its own answers would carry the marker)."""

FUZZ = settings(
    max_examples=15, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)
ID_ARGUMENTS = {
    "Workspace": ("*.*.workspaceId", "Query.workspace.id"),
    "Build": (
        "*.*.buildId",
        "*.*.filter.buildId",
        "Mutation.recordEvents.events[*].buildId",
        "Workspace.build.id",
    ),
    "Organization": ("*.*.organizationId",),
    "Invite": ("*.*.inviteId",),
}
"""The arguments that take an id of each type, as schemathesis binding keys."""


def fuzzing_schema() -> schemathesis.BaseSchema:
    """The registry's schema for the fuzzer, which draws most id arguments, and half of the
    organization slugs, task ids and keys, from dictionaries of known values, so that it gets
    past the lookups into the resolvers; `know` fills them once the objects are seeded."""
    names = ["ids", "slugs", "task-ids", *ID_ARGUMENTS]
    dictionaries: dict[str, Any] = {name: {"values": ["unknown"]} for name in names}
    dictionaries["keys"] = {"values": ["rows", "train"]}
    parameters: dict[str, Any] = {
        "Query.node.id": {"dictionary": "ids", "probability": 0.8},
        "Query.organization.slug": {"dictionary": "slugs", "probability": 0.5},
        "*.*.taskId": {"dictionary": "task-ids", "probability": 0.5},
        "*.*.key": {"dictionary": "keys", "probability": 0.5},
    }
    for type_name, arguments in ID_ARGUMENTS.items():
        for argument in arguments:
            parameters[argument] = {"dictionary": type_name, "probability": 0.8}
    config = SchemathesisConfig.from_dict({"dictionaries": dictionaries, "parameters": parameters})
    api = schemathesis.graphql.from_file(schema.as_str(), config=config)
    # Invalid documents (the negative mode) stop in graphql-core's validation, before the
    # registry's code: the examples are spent on valid ones, which reach the resolvers.
    api.config.generation.update(modes=[GenerationMode.POSITIVE], allow_x00=True)
    return api


local_api = fuzzing_schema()
server_api = fuzzing_schema()


@dataclass(frozen=True)
class Served:
    """A registry under test: its URL, its kind of database, the fuzzer's credentials, its
    seeded workspace and the global ids of all the objects seeded for it."""

    url: str
    database: str
    headers: dict[str, str]
    workspace: str
    ids: list[str]


@dataclass(frozen=True)
class Foreign:
    """The organization the fuzzer must not reach: its objects' global ids, the values no
    answer may show, and how it read before the fuzzer ran."""

    ids: list[str]
    hidden: frozenset[str]
    state: dict[str, Any]

    def shown_in(self, text: str) -> list[str]:
        """The hidden values that `text` contains."""
        return sorted(value for value in self.hidden if value in text)

    def sent_in(self, document: str) -> list[str]:
        """The foreign values a request's `document` names (a global id with its row id,
        a slug, a task id), longest first."""
        sent = {value for value in FOREIGN_PROBES if value in document}
        for value in self.ids:
            if value in document:
                sent |= {value, from_base64(value)[1]}
        return sorted(sent, key=len, reverse=True)


@dataclass(frozen=True)
class Tenants:
    """A registry in server mode: a member of `home` fuzzes it, next to `foreign`."""

    home: Served
    foreign: Foreign
    owner_headers: dict[str, str]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """The registry in local mode on a fresh database, seeded with objects the fuzzer knows.

    One per database for the whole module: the fuzzer's writes pile up, and the operations
    fuzzed later read them.
    """
    with (
        fresh_database(request, tmp_path_factory) as database_url,
        serving_settings(Settings(database_url=database_url)) as url,
    ):
        with httpx.Client(base_url=url) as client:
            ids = seed(client)
        know(local_api, ids, ["local"], SEEDED_TASKS)
        yield Served(url, request.param, {}, ids[0], ids)


# One parameter: schemathesis names each operation's test (`[Query.node][sqlite]`) only when
# the test is parametrized, and pytest-xdist's workers need the names unique.
@pytest.fixture(scope="module", params=["sqlite"])
def tenants(
    request: pytest.FixtureRequest,
    identity_provider: IdentityProvider,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Tenants]:
    """The registry in server mode on SQLite, with `home` seeded like the local registry and
    `foreign` seeded through the API by its owner, every value carrying the marker."""
    directory = tmp_path_factory.mktemp("fuzz-server")
    with fresh_database(request, tmp_path_factory) as database_url:
        settings = server_settings(database_url, identity_provider, directory / "key.pem")
        with serving_settings(settings) as url:
            home, foreign_tenant, member, owner = asyncio.run(make_organizations(url, settings))
            with httpx.Client(base_url=url, headers=member) as client:
                ids = seed(client)
            with httpx.Client(base_url=url, headers=owner) as client:
                foreign = seed_foreign(client, foreign_tenant)
            served = Served(url, "sqlite", member, ids[0], [*ids, home.build, home.invite])
            # `home`'s ids and slug twice: about a third of the known values are `foreign`'s.
            know(
                server_api,
                [*served.ids, *served.ids, *foreign.ids],
                [f"org-{HOME}", f"org-{HOME}", f"org-{FOREIGN}"],
                [*SEEDED_TASKS, "t1", *FOREIGN_PROBES],
            )
            yield Tenants(served, foreign, owner)


@FUZZ
@local_api.parametrize()
def test_no_input_makes_the_local_registry_fail(
    case: schemathesis.Case[Any], served: Served
) -> None:
    fuzz(case, served)


@FUZZ
@server_api.parametrize()
def test_no_input_makes_the_server_fail_or_show_another_organization(
    case: schemathesis.Case[Any], tenants: Tenants
) -> None:
    fuzz(case, tenants.home, no_foreign_data(tenants.foreign))


def test_the_fuzzer_left_the_other_organization_as_it_was(tenants: Tenants) -> None:
    # Runs after the fuzzer (pytest keeps the module's order), which tried every mutation on
    # the foreign organization's ids.
    with httpx.Client(base_url=tenants.home.url, headers=tenants.owner_headers) as client:
        assert foreign_state(client) == tenants.foreign.state


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


def know(
    api: schemathesis.BaseSchema, ids: Sequence[str], slugs: Sequence[str], task_ids: Sequence[str]
) -> None:
    """Fill `api`'s dictionaries with the global ids (by type), organization slugs and task
    ids of seeded objects."""
    values = {"ids": ids, "slugs": slugs, "task-ids": task_ids}
    for type_name in ID_ARGUMENTS:
        values[type_name] = [value for value in ids if from_base64(value)[0] == type_name] or ids
    dictionaries = {name: {"values": list(entries)} for name, entries in values.items()}
    api.config.dictionaries.update(
        SchemathesisConfig.from_dict({"dictionaries": dictionaries}).dictionaries
    )


def fuzz(case: schemathesis.Case[Any], served: Served, *checks: CheckFunction) -> None:
    """Send `case` to `served` with its credentials; fail on a server error, a refused
    credential, or any of `checks`."""
    # Refusing a generated input (an id of another type, a value out of range) is right, so
    # `positive_data_acceptance` is off; `no_server_error` replaces `not_a_server_error`.
    case.call_and_validate(
        base_url=f"{served.url}/graphql",
        headers=served.headers,
        excluded_checks=[not_a_server_error, positive_data_acceptance],
        additional_checks=[no_server_error, credential_accepted, *checks],
    )


def no_server_error(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case[Any]
) -> bool | None:
    """Fail on an HTTP 5xx, and on any GraphQL error the registry masked as unexpected
    (`INTERNAL_SERVER_ERROR`, "Internal server error (request id ...)").

    schemathesis' own `not_a_server_error` takes any error at a path for a server error
    unless its code is one Apollo Server uses, so it would flag the registry's `NOT_FOUND`.
    """
    assert response.status_code < 500, f"HTTP {response.status_code}: {response.text[:500]}"
    failed = server_errors(json_body(response))
    assert not failed, f"the registry failed (its log, above, has the request ids): {failed}"
    return None


def credential_accepted(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case[Any]
) -> bool | None:
    """Fail when the registry refuses the fuzzer's credential: the run would test nothing."""
    assert response.status_code not in (401, 403, 429), (
        f"the registry refused the fuzzer's credential: HTTP {response.status_code} "
        f"{response.text[:500]}"
    )
    return None


def no_foreign_data(foreign: Foreign) -> CheckFunction:
    """A check that fails when an answer shows any of `foreign`'s hidden values.

    An error message may quote the request (`id '...' is a Task id`, `no build <row id> in
    this workspace`), and the fuzzer sends foreign ids, slugs and task ids; so in errors the
    values the request sent are cut out before looking. The data must show none at all.
    """

    def no_foreign_data(
        ctx: schemathesis.CheckContext,
        response: schemathesis.Response,
        case: schemathesis.Case[Any],
    ) -> bool | None:
        answer = json_body(response)
        if isinstance(answer, dict):
            data = json.dumps(answer.get("data"))
            rest = json.dumps({key: value for key, value in answer.items() if key != "data"})
        else:
            data, rest = "null", response.text
        shown = foreign.shown_in(data)
        assert not shown, f"the data shows the other organization's {shown}: {data}"
        for sent in foreign.sent_in(str(case.body)):
            rest = rest.replace(sent, "<sent>")
        shown = foreign.shown_in(rest)
        assert not shown, f"an error shows the other organization's {shown}: {rest}"
        return None

    return no_foreign_data


def json_body(response: schemathesis.Response) -> object:
    """The response's JSON, or None when it is not JSON."""
    if not response.headers.get("content-type", [""])[0].startswith("application/json"):
        return None
    return response.json()


def server_errors(answer: object) -> list[dict[str, Any]]:
    """The errors of a GraphQL answer that the registry masked as unexpected."""
    errors = answer.get("errors") if isinstance(answer, dict) else None
    return [
        error
        for error in errors or []
        if (error.get("extensions") or {}).get("code") == "INTERNAL_SERVER_ERROR"
        or str(error.get("message", "")).startswith("Internal server error")
    ]


def texts() -> st.SearchStrategy[str]:
    """Any string, NUL characters included."""
    return st.text()


def made_up_ids() -> st.SearchStrategy[str]:
    """Global ids of objects that do not exist (of any type, node or not), and malformed
    ones; the fuzzing schemas draw real ids for most id arguments instead."""

    def global_id(type_name: str, node_id: str) -> str:
        return base64.b64encode(f"{type_name}:{node_id}".encode()).decode()

    return (
        st.builds(global_id, st.sampled_from(NODE_TYPES), st.uuids().map(str) | texts()) | texts()
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


schemathesis.graphql.scalar("ID", made_up_ids().map(nodes.String))
schemathesis.graphql.scalar("DateTime", datetimes().map(nodes.String))
schemathesis.graphql.scalar("JSON", json_values())


def run(client: httpx.Client, query: str, **variables: Any) -> dict[str, Any]:
    """The data of `query`; fails the test on any error."""
    answer = client.post("/graphql", json={"query": query, "variables": variables}).json()
    assert "errors" not in answer, answer["errors"]
    data: dict[str, Any] = answer["data"]
    return data


def seed(client: httpx.Client) -> list[str]:
    """Record two builds, tasks, events, a lock, an asset and logs in the caller's first
    workspace: the global ids of the workspace (first), its organization, the builds and
    the tasks."""
    organization = run(client, "{ organizations { id workspaces { id } } }")["organizations"][0]
    workspace = organization["workspaces"][0]["id"]
    start = "mutation($w: ID!) { startBuild(workspaceId: $w) { id } }"
    build = run(client, start, w=workspace)["startBuild"]["id"]
    finished = run(client, start, w=workspace)["startBuild"]["id"]
    run(
        client,
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
        client,
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
    tasks = run(
        client, "query($w: ID!) { workspace(id: $w) { tasks { nodes { id } } } }", w=workspace
    )
    task_ids = [task["id"] for task in tasks["workspace"]["tasks"]["nodes"]]
    return [workspace, organization["id"], build, finished, *task_ids]


async def make_organizations(
    url: str, settings: Settings
) -> tuple[Tenant, Tenant, dict[str, str], dict[str, str]]:
    """`home` and `foreign`, made through the store, with the headers of `home`'s member
    and of `foreign`'s owner."""
    async with server_mode_at(url, settings) as server:
        home = await make_tenant(server.sessions, HOME)
        foreign = await make_tenant(server.sessions, FOREIGN, task_id=f"{FOREIGN}-t1")
        member, owner = server.token(home, "member"), server.token(foreign, "owner")
    return home, foreign, bearer(member), bearer(owner)


def bearer(token: str) -> dict[str, str]:
    """The headers that present `token`."""
    return {"Authorization": f"Bearer {token}"}


def seed_foreign(client: httpx.Client, tenant: Tenant) -> Foreign:
    """Record, as the foreign owner, one of everything with the marker in its names and
    values; the hidden values are the marker, the global and row ids of its objects, its
    users' row ids and its API key prefixes."""
    organization = run(
        client,
        "query($s: String!) { organization(slug: $s) { id workspaces { id } } }",
        s=f"org-{FOREIGN}",
    )["organization"]
    workspace = organization["workspaces"][0]["id"]
    build = run(
        client,
        """mutation($w: ID!, $n: String!) {
            startBuild(workspaceId: $w, name: $n, commit: $n) { id } }""",
        w=workspace,
        n=f"{FOREIGN}-nightly",
    )["startBuild"]["id"]
    run(
        client,
        """mutation($w: ID!, $b: ID, $tasks: [TaskInput!]!, $root: String!) {
            registerTasks(workspaceId: $w, buildId: $b, tasks: $tasks, rootTaskIds: [$root]) {
              registered } }""",
        w=workspace,
        b=build,
        root=f"{FOREIGN}-train",
        tasks=[
            {
                "taskId": f"{FOREIGN}-prepare",
                "name": f"{FOREIGN}-Prepare",
                "namespace": FOREIGN,
                "parameters": {"rows": 10, "note": FOREIGN, FOREIGN: {"nested": FOREIGN}},
                "outputUri": f"s3://{FOREIGN}/prepare",
            },
            {
                "taskId": f"{FOREIGN}-train",
                "name": f"{FOREIGN}-Train",
                "parameters": {"rows": 10},
                "dependencies": [f"{FOREIGN}-prepare"],
            },
        ],
    )
    run(
        client,
        """mutation($w: ID!, $o: ID!, $b: ID!, $m: String!, $task: String!, $uri: String!,
                    $email: String!, $payload: JSON!) {
            recordEvents(workspaceId: $w, events: [
              {eventId: $m, kind: TASK_RUNNING, taskId: $task, buildId: $b,
               occurredAt: "2026-01-02T03:04:05Z", payload: $payload}]) { recorded }
            acquireLock(workspaceId: $w, key: $m, holder: $m, ttlSeconds: 600) { acquired }
            putAsset(workspaceId: $w, taskId: $task, name: $m, kind: MARKDOWN, body: $m) {
              name }
            appendLogs(workspaceId: $w, taskId: $task, buildId: $b,
                       lines: [{seq: 1, text: $m, loggedAt: "2026-01-02T03:04:05Z"}]) {
              appended }
            setTargetRoot(workspaceId: $w, name: $m, uri: $uri) { name }
            createApiKey(workspaceId: $w, name: $m) { apiKey { prefix } }
            createWorkspace(organizationId: $o, slug: $m, name: $m) { id }
            inviteMember(organizationId: $o, email: $email, role: ADMIN) { id } }""",
        w=workspace,
        o=organization["id"],
        b=build,
        m=FOREIGN,
        task=f"{FOREIGN}-prepare",
        uri=f"s3://{FOREIGN}/outputs",
        email=f"{FOREIGN}@example.com",
        payload={"note": FOREIGN},
    )
    state = foreign_state(client)
    ids = sorted(set(global_ids(state)))
    prefixes = [
        key["prefix"]
        for workspace in state["organization"]["workspaces"]
        for key in workspace["apiKeys"]
    ]
    row_ids = [from_base64(value)[1] for value in ids]
    users = [str(user) for user in tenant.users.values()]
    return Foreign(ids, frozenset({FOREIGN, *ids, *row_ids, *users, *prefixes}), state)


FOREIGN_STATE = """
query($s: String!) { organization(slug: $s) {
  id slug name createdAt
  members { user { email displayName } role joinedAt }
  invites { id email role expiresAt }
  workspaces {
    id slug name archivedAt
    targetRoots { name uri }
    apiKeys { name prefix createdAt revokedAt }
    locks { key holder fencingToken expiresAt }
    builds(first: 100) { totalCount nodes { id name commit status startedAt finishedAt
      rootTasks { taskId } } }
    tasks(first: 100) { totalCount nodes {
      id taskId namespace name version parameters outputUri status createdAt updatedAt
      dependencies { taskId }
      events(first: 100) { totalCount nodes { eventId kind occurredAt payload } }
      assets { name kind body }
      logs { seq stream text } } } } } }
"""


def foreign_state(client: httpx.Client) -> dict[str, Any]:
    """Everything of the foreign organization its owner can read."""
    return run(client, FOREIGN_STATE, s=f"org-{FOREIGN}")


def global_ids(value: object) -> Iterable[str]:
    """The values of the `id` fields anywhere in an answer."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "id" and isinstance(item, str):
                yield item
            else:
                yield from global_ids(item)
    elif isinstance(value, list):
        for item in value:
            yield from global_ids(item)
