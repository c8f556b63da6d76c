"""The registry's GraphQL schema: its queries, the guards around every operation, and errors.

Guards refuse, before anything runs, documents that are too deep, too long, or carry too
many aliases. Errors a client caused (a validation error, a bad id, a value out of range)
reach it as they are, with a `code`; any other error is logged in full and reaches the
client as a message with the request's id, so an operator can find it in the log.

`schema.graphql` at the repository root is `print_schema(schema)`, checked by a test.
"""

import logging
from collections.abc import Iterator
from datetime import datetime

import strawberry
from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import GraphQLError
from sqlalchemy.exc import DataError
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
    ValidationCache,
)
from strawberry.relay import GlobalIDValueError, Node
from strawberry.tools import merge_types
from strawberry.types.execution import (
    ExecutionContext,
    ExecutionResult,
    StreamExecutionResult,
)

from stardag_graphql.context import Context
from stardag_graphql.errors import RegistryError
from stardag_graphql.execution import LeafFastExecutionContext
from stardag_graphql.management import ManagementMutation
from stardag_graphql.mutations import BuildMutation
from stardag_graphql.store import tenancy
from stardag_graphql.subscriptions import Subscription
from stardag_graphql.types import Info, Organization, UTCDateTimeScalar, Viewer, Workspace, viewer

logger = logging.getLogger("stardag.registry")

MAX_DEPTH = 12
MAX_ALIASES = 20
MAX_TOKENS = 5000
CACHED_DOCUMENTS = 256


@strawberry.type
class Query:
    @strawberry.field(description="The signed-in person (none for an API key).")
    async def viewer(self, info: Info) -> Viewer | None:
        return await viewer(info)

    @strawberry.field(description="The caller's organizations, by slug.")
    async def organizations(self, info: Info) -> list[Organization]:
        async with info.context.reads() as session:
            rows = await tenancy.organizations(session, info.context.identity)
        return [Organization.from_row(row) for row in rows]

    @strawberry.field(description="One of the caller's organizations, by slug.")
    async def organization(self, info: Info, slug: str) -> Organization | None:
        async with info.context.reads() as session:
            row = await tenancy.organization_by_slug(session, info.context.identity, slug)
        return Organization.from_row(row) if row else None

    @strawberry.field(description="One of the caller's workspaces, by id.")
    async def workspace(self, info: Info, id: strawberry.relay.GlobalID) -> Workspace | None:
        if id.type_name != "Workspace":
            return None
        (found,) = await Workspace.resolve_nodes(info=info, node_ids=[id.node_id])
        return found

    node: Node | None = strawberry.relay.node(description="Any object, by its global id.")


class MaskUnexpectedErrors(SchemaExtension):
    """Keep client errors readable; log any other in full and show only the request id.

    A websocket sends each result as it comes (`on_stream_result`); HTTP sends the result of
    the whole operation (`on_operation`).
    """

    def __init__(self) -> None:
        self._streamed = False

    def on_operation(self) -> Iterator[None]:
        """Rewrite the errors of the finished operation, unless they were streamed."""
        yield
        if not self._streamed:
            self._rewrite(self.execution_context.result)

    def on_stream_result(self, result: StreamExecutionResult) -> Iterator[None]:
        """Rewrite the errors of a result before the websocket sends it."""
        self._streamed = True
        self._rewrite(result)
        yield

    def _rewrite(self, result: object) -> None:
        if isinstance(result, ExecutionResult | GraphQLExecutionResult) and result.errors:
            result.errors = [self._shown(error) for error in result.errors]

    def _shown(self, error: GraphQLError) -> GraphQLError:
        original = error.original_error
        # Located in the document but not on a result path, the error came from validation:
        # a literal the client wrote is invalid (even when a scalar's parser raised it).
        validation = error.path is None and bool(error.nodes)
        if original is None or isinstance(original, GraphQLError) or validation:
            return error
        if isinstance(original, RegistryError):
            return _with_code(error, original.code)
        if isinstance(original, GlobalIDValueError):
            return _with_code(error, "BAD_USER_INPUT")
        if isinstance(original, DataError):
            # The database refused a value the client sent (a NUL character, a number out of
            # range): say which, without the statement.
            reason = str(original.orig).splitlines()[0]
            return GraphQLError(
                f"the database cannot store a value of this request: {reason}",
                nodes=error.nodes,
                path=error.path,
                extensions={"code": "BAD_USER_INPUT"},
            )
        context = self.execution_context.context
        request_id = context.request_id if isinstance(context, Context) else "unknown"
        logger.error(
            "request %s failed at %s: %s",
            request_id,
            ".".join(map(str, error.path or ())),
            error.message,
            exc_info=original,
        )
        return GraphQLError(
            f"Internal server error (request id {request_id}): the server log has the details",
            nodes=error.nodes,
            path=error.path,
            extensions={"code": "INTERNAL_SERVER_ERROR", "requestId": request_id},
        )


def _with_code(error: GraphQLError, code: str) -> GraphQLError:
    return GraphQLError(
        error.message,
        nodes=error.nodes,
        path=error.path,
        original_error=error.original_error,
        extensions={**(error.extensions or {}), "code": code},
    )


# The depth and alias guards' rules, built once: the validation cache is keyed by the rule
# classes, and a limiter built per request would make a new class (and a miss) every time.
GUARD_RULES = [
    *QueryDepthLimiter(max_depth=MAX_DEPTH).validation_rules,
    *MaxAliasesLimiter(max_alias_count=MAX_ALIASES).validation_rules,
]


class RegistrySchema(strawberry.Schema):
    """The schema, logging only unexpected errors (`MaskUnexpectedErrors` does), not clients'."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Leave logging to `MaskUnexpectedErrors`: a client's mistake is not a server event."""


schema = RegistrySchema(
    query=Query,
    scalar_overrides={datetime: UTCDateTimeScalar},
    mutation=merge_types("Mutation", (BuildMutation, ManagementMutation)),
    subscription=Subscription,
    execution_context_class=LeafFastExecutionContext,
    extensions=[
        # Clients send the same few documents again and again: parse and validate each once.
        lambda: ParserCache(maxsize=CACHED_DOCUMENTS),
        lambda: ValidationCache(maxsize=CACHED_DOCUMENTS),
        lambda: AddValidationRules(GUARD_RULES),
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        MaskUnexpectedErrors,
    ],
)
"""The registry's schema; `schema.graphql` holds its printed form."""
