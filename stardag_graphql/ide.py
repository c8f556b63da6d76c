"""GraphiQL served offline: the IDE page and its assets come from this package, not a CDN.

Strawberry's built-in IDE page loads React and GraphiQL from a CDN, so without internet (and in
a native window) it stays blank. `OfflineGraphQL` renders its own page instead, which loads the
bundles vendored in `graphiql/` (see its README for versions and how to refresh them) from a
`StaticFiles` mount. Mount `static_mount()` next to the GraphQL routes, at the same path the
view's `static_path` names.
"""

import html
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from cross_web import AsyncHTTPRequestAdapter, HTTPException
from graphql import GraphQLError, OperationType, get_operation_ast, parse
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLRequestData
from strawberry.http.ides import GraphQL_IDE
from strawberry.http.typevars import Context, RootValue
from strawberry.schema import BaseSchema
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL
from strawberry.types import ExecutionResult

__all__ = ["STATIC_DIR", "OfflineGraphQL", "static_mount"]

STATIC_DIR: Path = Path(__file__).parent / "graphiql"
"""The vendored GraphiQL, React and explorer-plugin bundles (package data)."""
CHECKED_TOKENS = 10_000
"""The longest document (in tokens) whose operation type is checked before it runs."""

_DEFAULT_STATIC_PATH = "/static/graphiql"


def static_mount(path: str = _DEFAULT_STATIC_PATH) -> Mount:
    """A Starlette mount serving the vendored GraphiQL assets at `path`."""
    return Mount(path, app=StaticFiles(directory=STATIC_DIR), name="graphiql")


class OfflineGraphQL(GraphQL[Context, RootValue]):
    """Strawberry's ASGI GraphQL view whose GraphiQL page loads only from `static_path`."""

    def __init__(
        self,
        schema: BaseSchema,
        graphql_ide: GraphQL_IDE | None = "graphiql",
        allow_queries_via_get: bool = True,
        keep_alive: bool = False,
        keep_alive_interval: float = 1,
        subscription_protocols: Sequence[str] = (
            GRAPHQL_TRANSPORT_WS_PROTOCOL,
            GRAPHQL_WS_PROTOCOL,
        ),
        connection_init_wait_timeout: timedelta = timedelta(minutes=1),
        multipart_uploads_enabled: bool = False,
        max_subscriptions_per_connection: int | None = 100,
        allowed_origins: Sequence[str] = (),
        *,
        static_path: str = _DEFAULT_STATIC_PATH,
    ) -> None:
        super().__init__(
            schema,
            graphql_ide=graphql_ide,
            allow_queries_via_get=allow_queries_via_get,
            keep_alive=keep_alive,
            keep_alive_interval=keep_alive_interval,
            subscription_protocols=subscription_protocols,
            connection_init_wait_timeout=connection_init_wait_timeout,
            multipart_uploads_enabled=multipart_uploads_enabled,
            max_subscriptions_per_connection=max_subscriptions_per_connection,
            allowed_origins=allowed_origins,
        )
        self.static_path = static_path.rstrip("/")

    async def execute_single(
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        sub_response: Response,
        context: Context,
        root_value: RootValue | None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        """Run one operation sent over HTTP; a subscription is refused with a 400 that says
        where subscriptions run (Strawberry would run it as a query and answer with a null
        for its non-null field, an internal error)."""
        if request_data.query and _is_subscription(request_data.query, request_data.operation_name):
            raise HTTPException(
                400,
                "subscriptions run over a websocket (graphql-transport-ws) at this URL, not "
                f"over HTTP {request_adapter.method}: subscribe with a websocket client",
            )
        return await super().execute_single(
            request, request_adapter, sub_response, context, root_value, request_data
        )

    async def render_graphql_ide(self, request: Request) -> Response:
        """The GraphiQL page, loading its scripts and styles from `static_path`."""
        return HTMLResponse(_PAGE.replace("{static}", html.escape(self.static_path)))


def _is_subscription(query: str, operation_name: str | None) -> bool:
    """Whether the operation of `query` that runs is a subscription. Only a document that
    names the keyword is parsed, up to `CHECKED_TOKENS` tokens; one that does not parse
    within them is the schema's to report, under its own limits."""
    if "subscription" not in query:
        return False
    try:
        document = parse(query, no_location=True, max_tokens=CHECKED_TOKENS)
    except GraphQLError:
        return False
    operation = get_operation_ast(document, operation_name)
    return operation is not None and operation.operation == OperationType.SUBSCRIPTION


# The empty icon spares the browser a request for /favicon.ico (a 404 in most apps). The endpoint
# is the page's own URL, so the page works wherever the view is routed; GraphiQL's websocket
# client needs an absolute ws:/wss: URL for subscriptions.
_PAGE = """<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>GraphiQL</title>
    <link rel="icon" href="data:,">
    <link rel="stylesheet" href="{static}/graphiql.min.css">
    <link rel="stylesheet" href="{static}/plugin-explorer.css">
    <style>
      body { margin: 0; height: 100vh; overflow: hidden; }
      #graphiql { height: 100vh; }
    </style>
  </head>
  <body>
    <div id="graphiql">Loading GraphiQL…</div>
    <script src="{static}/react.production.min.js"></script>
    <script src="{static}/react-dom.production.min.js"></script>
    <script src="{static}/graphiql.min.js"></script>
    <script src="{static}/plugin-explorer.umd.js"></script>
    <script>
      const url = window.location.pathname;
      const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
      const subscriptionUrl = scheme + "//" + window.location.host + url;
      const fetcher = GraphiQL.createFetcher({ url, subscriptionUrl });
      const explorer = GraphiQLPluginExplorer.explorerPlugin();
      ReactDOM.createRoot(document.getElementById("graphiql")).render(
        React.createElement(GraphiQL, { fetcher, plugins: [explorer] }),
      );
    </script>
  </body>
</html>
"""
