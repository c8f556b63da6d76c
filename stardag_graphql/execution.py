"""GraphQL execution with a short path for plain leaf fields.

A lineage or a page answers with a thousand or more scalar fields read straight off objects
(`taskId`, `name`, `status`, ...). graphql-core runs the same machinery for each of them as
for a resolver with arguments: it builds a resolve info, looks for arguments, checks twice
whether the result is awaitable and recurses through the type's wrappers. For a field that
Strawberry resolves by reading an attribute (its "basic" fields), with no arguments and no
middleware, `LeafFastExecutionContext` reads the attribute and serializes it directly. Any
other field, and any value that the short path would have to refuse (a null for a non-null
field, a value the scalar cannot serialize), goes through graphql-core as before, so errors
read exactly as they did.
"""

from typing import Any

from graphql import (
    GraphQLField,
    GraphQLLeafType,
    GraphQLObjectType,
    Undefined,
    is_leaf_type,
    is_non_null_type,
)
from graphql.execution.collect_fields import FieldDetailsList
from graphql.pyutils import Path
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext


class LeafFastExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's execution context, with plain leaf fields resolved and serialized inline."""

    def execute_field(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: FieldDetailsList,
        path: Path,
        position_context: Any,
    ) -> Any:
        """Resolve and complete one field: inline for a plain leaf, else as graphql-core does."""
        node = field_details_list[0].node
        field_def = self.schema.get_field(parent_type, node.name.value)
        leaf = _plain_leaf(field_def) if field_def is not None else None
        middleware = self.middleware_manager is not None and self.middleware_manager.middlewares
        if leaf is not None and field_def is not None and not node.arguments and not middleware:
            try:
                value = field_def.resolve(source, None)  # type: ignore[misc]
                serialized = None if value is None else leaf.coerce_output_value(value)
            except Exception:
                # graphql-core runs the field again below, and reports what went wrong.
                value = serialized = Undefined
            if serialized is not None and serialized is not Undefined:
                return serialized
            if value is None and not is_non_null_type(field_def.type):
                return None
        return super().execute_field(
            parent_type, source, field_details_list, path, position_context
        )


# Whether each field is a plain leaf, by the field's id. The entry holds the field, so that
# the id cannot be reused by another field (GraphQLField is not hashable).
_PLAIN_LEAVES: dict[int, tuple[GraphQLField, GraphQLLeafType | None]] = {}


def _plain_leaf(field_def: GraphQLField) -> GraphQLLeafType | None:
    """The scalar or enum type of a field Strawberry resolves by reading an attribute (it marks
    those resolvers `_is_default`; a field with permissions or extensions has none) and that
    takes no arguments; None for any other field."""
    entry = _PLAIN_LEAVES.get(id(field_def))
    if entry is None:
        field_type = field_def.type
        inner = field_type.of_type if is_non_null_type(field_type) else field_type
        basic = getattr(field_def.resolve, "_is_default", False)
        leaf = inner if basic and not field_def.args and is_leaf_type(inner) else None
        entry = _PLAIN_LEAVES[id(field_def)] = (field_def, leaf)
    return entry[1]
