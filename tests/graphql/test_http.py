"""The registry over real HTTP and websockets: uvicorn on loopback, driven by the gql client."""

import asyncio
import base64
import contextlib
import json
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from gql import Client, GraphQLRequest
from gql.client import AsyncClientSession
from gql.transport.exceptions import TransportConnectionFailed, TransportQueryError
from gql.transport.httpx import HTTPXAsyncTransport
from gql.transport.websockets import WebsocketsTransport
from sqlalchemy import text
from websockets.exceptions import InvalidStatus

from stardag_graphql.app import create_app
from stardag_graphql.database import create_engine
from stardag_graphql.settings import Settings
from tests.conftest import serving
from tests.graphql.conftest import RECORD, REGISTER

# A page of the GUI, served on another port, may use the websocket; other origins may not.
GUI_ORIGIN = "http://localhost:8080"
FOREIGN_ORIGIN = "https://evil.example"

# Seconds any single subscription step may take before the test fails instead of hanging.
TIMEOUT = 10

WORKSPACE = "{ organizations { workspaces { id } } }"
START_BUILD = """
mutation Start($workspace: ID!) {
  startBuild(workspaceId: $workspace, name: "nightly", commit: "abc123") { id name status }
}
"""
FINISH = """
mutation Finish($build: ID!) { finishBuild(buildId: $build, status: COMPLETED) { status } }
"""
BUILD = """
query Build($id: ID!) {
  node(id: $id) {
    ... on Build {
      name status commit
      rootTasks { taskId }
      graph { edges { upstream downstream } }
      events { edges { node { eventId kind task { taskId status } } } }
    }
  }
}
"""
BUILDS = """
query Builds($workspace: ID!, $after: String) {
  workspace(id: $workspace) {
    builds(first: 1, after: $after) { nodes { name } pageInfo { endCursor } }
  }
}
"""
BUILD_EVENTS = """
subscription Follow($build: ID!, $after: String) {
  buildEvents(buildId: $build, after: $after) { cursor event { eventId kind } }
}
"""
TASK_CHANGES = """
subscription Changes($workspace: ID!) {
  taskStatusChanged(workspaceId: $workspace) { taskId status }
}
"""

# Two tasks of a small pipeline: `train` needs `prepare`.
PIPELINE = [
    {"taskId": "prepare", "name": "Prepare", "namespace": "demo"},
    {"taskId": "train", "name": "Train", "namespace": "demo", "dependencies": ["prepare"]},
]


@pytest.fixture
async def server(database_url: str) -> AsyncIterator[str]:
    """The registry under uvicorn on a loopback port (its lifespan run by uvicorn); its URL."""
    settings = Settings(database_url=database_url, allowed_origins=[GUI_ORIGIN])
    with serving(create_app(settings)) as url:
        yield url


async def test_a_build_is_recorded_and_read_back_over_http(server: str) -> None:
    async with http_client(server) as http:
        workspace = await workspace_id(http)
        build = await start_build(http, workspace)
        registered = await run(
            http, REGISTER, workspace=workspace, tasks=PIPELINE, build=build, roots=["train"]
        )
        recorded = await run(
            http,
            RECORD,
            workspace=workspace,
            events=[
                event("e1", "TASK_RUNNING", "prepare", build),
                event("e2", "TASK_COMPLETED", "prepare", build),
                event("e3", "TASK_RUNNING", "train", build),
            ],
        )
        resent = await run(
            http,
            RECORD,
            workspace=workspace,
            events=[event("e1", "TASK_RUNNING", "prepare", build)],
        )
        data = await run(http, BUILD, id=build)

    assert registered == {"registerTasks": {"registered": 2}}
    assert recorded == {"recordEvents": {"recorded": 3, "duplicates": 0}}
    assert resent == {"recordEvents": {"recorded": 0, "duplicates": 1}}
    assert data["node"] == {
        "name": "nightly",
        "status": "RUNNING",
        "commit": "abc123",
        "rootTasks": [{"taskId": "train"}],
        "graph": {"edges": [{"upstream": "prepare", "downstream": "train"}]},
        "events": {
            "edges": [
                {"node": {"eventId": "e1", "kind": "TASK_RUNNING", "task": done("prepare")}},
                {"node": {"eventId": "e2", "kind": "TASK_COMPLETED", "task": done("prepare")}},
                {"node": {"eventId": "e3", "kind": "TASK_RUNNING", "task": running("train")}},
            ]
        },
    }


async def test_builds_page_newest_first_to_the_end(server: str) -> None:
    names: list[str] = []
    async with http_client(server) as http:
        workspace = await workspace_id(http)
        for name in ("first", "second", "third"):
            await run(
                http,
                "mutation($w: ID!, $n: String) { startBuild(workspaceId: $w, name: $n) { id } }",
                w=workspace,
                n=name,
            )
        after = None
        for _ in range(3):
            data = await run(http, BUILDS, workspace=workspace, after=after)
            names += [build["name"] for build in data["workspace"]["builds"]["nodes"]]
            after = data["workspace"]["builds"]["pageInfo"]["endCursor"]

    assert names == ["third", "second", "first"]


async def test_in_local_mode_the_local_user_creates_and_manages_organizations(
    server: str,
) -> None:
    async with http_client(server) as http:
        created = await run(
            http, 'mutation { createOrganization(slug: "ml-team", name: "ML team") { slug } }'
        )
        team = await run(
            http,
            '{ organization(slug: "ml-team") { id viewerRole workspaces { slug } '
            "members { user { email } role } } }",
        )
        workspace = await run(
            http,
            'mutation($o: ID!) { createWorkspace(organizationId: $o, slug: "exp", '
            'name: "Experiments") { slug } }',
            o=team["organization"]["id"],
        )
        listed = await run(http, "{ organizations { slug } viewer { memberships { role } } }")

    assert created == {"createOrganization": {"slug": "ml-team"}}
    assert team["organization"]["viewerRole"] == "OWNER"
    assert team["organization"]["workspaces"] == [{"slug": "default"}]
    assert team["organization"]["members"] == [
        {"user": {"email": "local@localhost"}, "role": "OWNER"}
    ]
    assert workspace == {"createWorkspace": {"slug": "exp"}}
    assert [org["slug"] for org in listed["organizations"]] == ["local", "ml-team"]
    assert listed["viewer"]["memberships"] == [{"role": "OWNER"}, {"role": "OWNER"}]


async def test_every_answer_carries_its_own_request_id(server: str) -> None:
    transport = HTTPXAsyncTransport(url=f"{server}/graphql")
    request_ids = []
    async with Client(transport=transport) as session:
        for _ in range(2):
            await session.execute(GraphQLRequest(WORKSPACE))
            assert transport.response_headers is not None
            request_ids.append(transport.response_headers["X-Request-Id"])

    assert all(re.fullmatch("[0-9a-f]{16}", request_id) for request_id in request_ids)
    assert request_ids[0] != request_ids[1]


async def test_queries_may_use_get_but_mutations_may_not(server: str) -> None:
    async with httpx.AsyncClient(base_url=server) as client:
        query = await client.get("/graphql", params={"query": WORKSPACE})
        workspace = query.json()["data"]["organizations"][0]["workspaces"][0]["id"]
        mutation = await client.get(
            "/graphql",
            params={"query": START_BUILD, "variables": json.dumps({"workspace": workspace})},
        )
        builds = await client.post(
            "/graphql",
            json={
                "query": "query($w: ID!) { workspace(id: $w) { builds { totalCount } } }",
                "variables": {"w": workspace},
            },
        )

    assert query.status_code == 200
    assert mutation.status_code == 400
    assert mutation.text == "mutations are not allowed when using GET"
    assert builds.json() == {"data": {"workspace": {"builds": {"totalCount": 0}}}}


async def test_a_subscription_over_http_is_told_to_use_the_websocket(server: str) -> None:
    subscription = "subscription($w: ID!) { taskStatusChanged(workspaceId: $w) { taskId } }"
    named = subscription.replace("subscription", "subscription Changes")
    both = f"query Names {{ __typename }}\n{named}"
    async with httpx.AsyncClient(base_url=server) as client:
        workspace = (await client.post("/graphql", json={"query": WORKSPACE})).json()["data"][
            "organizations"
        ][0]["workspaces"][0]["id"]
        posted = await client.post(
            "/graphql", json={"query": subscription, "variables": {"w": workspace}}
        )
        got = await client.get(
            "/graphql", params={"query": subscription, "variables": json.dumps({"w": workspace})}
        )
        chosen_query = await client.post("/graphql", json={"query": both, "operationName": "Names"})

    for response, method in ((posted, "POST"), (got, "GET")):
        assert response.status_code == 400
        assert response.text == (
            "subscriptions run over a websocket (graphql-transport-ws) at this URL, not over "
            f"HTTP {method}: subscribe with a websocket client"
        )
    assert chosen_query.json() == {"data": {"__typename": "Query"}}


async def test_the_health_check_answers_ok(server: str) -> None:
    async with httpx.AsyncClient(base_url=server) as client:
        response = await client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_a_client_that_leaves_mid_request_is_no_server_error(
    server: str, caplog: pytest.LogCaptureFixture
) -> None:
    host, port = server.removeprefix("http://").split(":")
    _, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: 100\r\n\r\n{"query": '
    )
    await writer.drain()
    writer.close()
    await writer.wait_closed()

    async with httpx.AsyncClient(base_url=server) as client:
        assert (await client.get("/healthz")).status_code == 200
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == []


async def test_graphiql_is_served_to_a_browser(server: str) -> None:
    async with httpx.AsyncClient(base_url=server) as client:
        page = await client.get("/graphql", headers={"Accept": "text/html"})
        script = await client.get("/static/graphiql/graphiql.min.js")

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "<title>GraphiQL</title>" in page.text
    assert '<script src="/static/graphiql/graphiql.min.js"></script>' in page.text
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]


async def test_clients_read_the_schema_by_introspection(server: str) -> None:
    client = Client(
        transport=HTTPXAsyncTransport(url=f"{server}/graphql"), fetch_schema_from_transport=True
    )
    async with client:
        pass

    assert client.schema is not None
    assert client.schema.mutation_type is not None
    assert "registerTasks" in client.schema.mutation_type.fields


async def test_a_followed_build_streams_new_events_and_ends_when_finished(server: str) -> None:
    async with http_client(server) as http, websocket_client(server) as ws:
        workspace = await workspace_id(http)
        build = await start_build(http, workspace)
        await run(http, REGISTER, workspace=workspace, tasks=PIPELINE, build=build)
        await record(http, workspace, event("e1", "TASK_RUNNING", "prepare", build))
        followed = ws.subscribe(GraphQLRequest(BUILD_EVENTS, variable_values={"build": build}))

        history = await receive(followed, 1)
        await record(http, workspace, event("e2", "TASK_COMPLETED", "prepare", build))
        live = await receive(followed, 1)
        await record(
            http,
            workspace,
            event("e3", "TASK_RUNNING", "train", build),
            event("e4", "TASK_COMPLETED", "train", build),
        )
        await run(http, FINISH, build=build)
        rest = await until_complete(followed)

    assert event_ids(history) == ["e1"]
    assert event_ids(live) == ["e2"]
    assert event_ids(rest) == ["e3", "e4"]
    assert rest[-1]["buildEvents"]["event"] == {"eventId": "e4", "kind": "TASK_COMPLETED"}


async def test_a_follower_resumes_after_the_cursor_it_last_received(server: str) -> None:
    async with http_client(server) as http, websocket_client(server) as ws:
        workspace = await workspace_id(http)
        build = await start_build(http, workspace)
        await run(http, REGISTER, workspace=workspace, tasks=PIPELINE, build=build)
        await record(
            http,
            workspace,
            *(event(f"e{n}", "TASK_RUNNING", "prepare", build) for n in range(1, 5)),
        )
        await run(http, FINISH, build=build)

        everything = await until_complete(
            ws.subscribe(GraphQLRequest(BUILD_EVENTS, variable_values={"build": build}))
        )
        cursor = everything[1]["buildEvents"]["cursor"]
        resumed = await until_complete(
            ws.subscribe(
                GraphQLRequest(BUILD_EVENTS, variable_values={"build": build, "after": cursor})
            )
        )

    assert event_ids(everything) == ["e1", "e2", "e3", "e4"]
    assert event_ids(resumed) == ["e3", "e4"]


async def test_following_an_unknown_build_is_a_client_error(server: str) -> None:
    unknown = base64.b64encode(f"Build:{uuid.UUID(int=0)}".encode()).decode()
    async with websocket_client(server) as ws:
        followed = ws.subscribe(GraphQLRequest(BUILD_EVENTS, variable_values={"build": unknown}))
        with pytest.raises(TransportQueryError) as refused:
            await receive(followed, 1)

    assert refused.value.errors is not None
    assert refused.value.errors[0]["message"].startswith(f"no build {unknown}")
    assert refused.value.errors[0]["extensions"] == {"code": "NOT_FOUND"}


async def test_an_unexpected_error_in_a_subscription_is_masked(
    server: str, database_url: str
) -> None:
    async with http_client(server) as http, websocket_client(server) as ws:
        workspace = await workspace_id(http)
        build = await start_build(http, workspace)
        await run(http, REGISTER, workspace=workspace, tasks=PIPELINE, build=build)
        await record(http, workspace, event("e1", "TASK_RUNNING", "prepare", build))
        followed = ws.subscribe(GraphQLRequest(BUILD_EVENTS, variable_values={"build": build}))
        await receive(followed, 1)

        await rename_table(database_url, "events", "events_lost")
        with pytest.raises(TransportQueryError) as failed:
            await receive(followed, 1)

    assert failed.value.errors is not None
    error = failed.value.errors[0]
    assert error["message"].startswith("Internal server error (request id ")
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert "events" not in error["message"]


async def test_a_status_change_reaches_the_workspace_subscription(server: str) -> None:
    async with http_client(server) as http, websocket_client(server) as ws:
        workspace = await workspace_id(http)
        await run(http, REGISTER, workspace=workspace, tasks=PIPELINE)
        changes = ws.subscribe(
            GraphQLRequest(TASK_CHANGES, variable_values={"workspace": workspace})
        )
        first_change = asyncio.ensure_future(next_with_status(changes, "RUNNING"))
        await subscription_started()
        await record(http, workspace, event("e1", "TASK_RUNNING", "train"))
        running = await first_change
        await record(http, workspace, event("e2", "TASK_FAILED", "train"))
        failed = await next_with_status(changes, "FAILED")
        await changes.aclose()

    assert running == {"taskId": "train", "status": "RUNNING"}
    assert failed == {"taskId": "train", "status": "FAILED"}


async def test_the_workspace_subscription_starts_from_now(server: str) -> None:
    async with http_client(server) as http, websocket_client(server) as ws:
        workspace = await workspace_id(http)
        await run(http, REGISTER, workspace=workspace, tasks=PIPELINE)
        changes = ws.subscribe(
            GraphQLRequest(TASK_CHANGES, variable_values={"workspace": workspace})
        )
        first_change = asyncio.ensure_future(receive(changes, 1))
        await subscription_started()
        await record(http, workspace, event("e1", "TASK_RUNNING", "train"))
        first = await first_change
        await changes.aclose()

    assert first == [{"taskStatusChanged": {"taskId": "train", "status": "RUNNING"}}]


async def test_the_websocket_refuses_pages_from_foreign_origins(server: str) -> None:
    async with websocket_client(server, origin=GUI_ORIGIN) as gui:
        workspace = await gui.execute(GraphQLRequest(WORKSPACE))
    with pytest.raises(TransportConnectionFailed) as refused:
        async with websocket_client(server, origin=FOREIGN_ORIGIN):
            pass

    assert workspace["organizations"][0]["workspaces"][0]["id"]
    assert isinstance(refused.value.__cause__, InvalidStatus)
    assert refused.value.__cause__.response.status_code == 403


@contextlib.asynccontextmanager
async def http_client(server: str) -> AsyncIterator[AsyncClientSession]:
    """A gql session that posts operations to the registry."""
    async with Client(transport=HTTPXAsyncTransport(url=f"{server}/graphql")) as session:
        assert isinstance(session, AsyncClientSession)
        yield session


@contextlib.asynccontextmanager
async def websocket_client(
    server: str, origin: str | None = None
) -> AsyncIterator[AsyncClientSession]:
    """A gql session on the registry's websocket (graphql-transport-ws), from `origin` if given."""
    transport = WebsocketsTransport(
        url=server.replace("http://", "ws://", 1) + "/graphql",
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
        connect_args={"origin": origin} if origin else {},
    )
    async with Client(transport=transport, execute_timeout=TIMEOUT) as session:
        assert isinstance(session, AsyncClientSession)
        yield session


async def subscription_started() -> None:
    """Give a subscription just sent time to start: graphql-transport-ws acknowledges none."""
    await asyncio.sleep(0.3)


async def rename_table(database_url: str, table: str, new_name: str) -> None:
    """Rename a table behind the server's back, so its next read of `table` fails."""
    engine = create_engine(Settings(database_url=database_url))
    try:
        async with engine.begin() as connection:
            await connection.execute(text(f"ALTER TABLE {table} RENAME TO {new_name}"))
    finally:
        await engine.dispose()


async def run(session: AsyncClientSession, query: str, **variables: Any) -> dict[str, Any]:
    """The data of `query`; the client raises on any GraphQL error."""
    return await session.execute(GraphQLRequest(query, variable_values=variables))


async def workspace_id(session: AsyncClientSession) -> str:
    """The global id of the local user's workspace."""
    data = await run(session, WORKSPACE)
    return str(data["organizations"][0]["workspaces"][0]["id"])


async def start_build(session: AsyncClientSession, workspace: str) -> str:
    """The global id of a new running build."""
    data = await run(session, START_BUILD, workspace=workspace)
    return str(data["startBuild"]["id"])


async def record(session: AsyncClientSession, workspace: str, *events: dict[str, Any]) -> None:
    """Record `events`, all of them new."""
    data = await run(session, RECORD, workspace=workspace, events=list(events))
    assert data["recordEvents"] == {"recorded": len(events), "duplicates": 0}


def event(event_id: str, kind: str, task_id: str, build: str | None = None) -> dict[str, Any]:
    """An `EventInput` for a task, in a build if given; events occur in the order of their ids."""
    return {
        "eventId": event_id,
        "kind": kind,
        "taskId": task_id,
        "buildId": build,
        "occurredAt": f"2026-01-02T03:04:{int(event_id[1:]):02d}+00:00",
    }


def done(task_id: str) -> dict[str, str]:
    """A task as it reads once completed."""
    return {"taskId": task_id, "status": "COMPLETED"}


def running(task_id: str) -> dict[str, str]:
    """A task as it reads while running."""
    return {"taskId": task_id, "status": "RUNNING"}


async def receive(subscription: AsyncIterator[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """The next `count` results of a subscription, each within `TIMEOUT` seconds."""
    return [await asyncio.wait_for(anext(subscription), TIMEOUT) for _ in range(count)]


async def until_complete(subscription: AsyncIterator[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every result a subscription still sends, once it completes within `TIMEOUT` seconds."""

    async def drain() -> list[dict[str, Any]]:
        return [result async for result in subscription]

    return await asyncio.wait_for(drain(), TIMEOUT)


async def next_with_status(
    subscription: AsyncIterator[dict[str, Any]], status: str
) -> dict[str, Any]:
    """The next task `taskStatusChanged` sends with `status`, within `TIMEOUT` seconds."""

    async def find() -> dict[str, Any]:
        async for result in subscription:
            if result["taskStatusChanged"]["status"] == status:
                return dict(result["taskStatusChanged"])
        raise AssertionError(f"the subscription ended before a task became {status}")

    return await asyncio.wait_for(find(), TIMEOUT)


def event_ids(results: list[dict[str, Any]]) -> list[str]:
    """The event ids of `buildEvents` results, in the order received."""
    return [result["buildEvents"]["event"]["eventId"] for result in results]


async def test_an_api_key_authenticates_a_request_and_a_bad_one_is_refused(server: str) -> None:
    async with http_client(server) as http:
        workspace = await workspace_id(http)
        created = await run(
            http,
            'mutation($w: ID!) { createApiKey(workspaceId: $w, name: "ci") { secret } }',
            w=workspace,
        )
    secret = created["createApiKey"]["secret"]
    query = {"query": "{ organizations { workspaces { id } } viewer { email } }"}

    async with httpx.AsyncClient(base_url=server) as client:
        allowed = await client.post(
            "/graphql", json=query, headers={"Authorization": f"Bearer {secret}"}
        )
        forged = await client.post(
            "/graphql", json=query, headers={"Authorization": f"Bearer {secret}x"}
        )
        malformed = await client.post("/graphql", json=query, headers={"Authorization": "Basic x"})

    assert allowed.status_code == 200
    assert allowed.json()["data"]["organizations"] == [{"workspaces": [{"id": workspace}]}]
    assert forged.status_code == 401
    assert "API key is not valid" in forged.text
    assert secret not in forged.text
    assert malformed.status_code == 401
    assert "Bearer <registry token or API key>" in malformed.text
