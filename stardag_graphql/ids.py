"""Global ids: the API names every object `base64("<Type>:<uuid>")`, as Relay expects."""

import uuid

from strawberry.relay import GlobalID

from stardag_graphql.errors import InvalidInputError


def global_id(type_name: str, pk: uuid.UUID) -> GlobalID:
    """The global id of the `type_name` row `pk`."""
    return GlobalID(type_name, str(pk))


def row_id(value: GlobalID, type_name: str) -> uuid.UUID:
    """The row id inside a global id; `InvalidInputError` when it names another type."""
    if value.type_name != type_name:
        raise InvalidInputError(
            f"id {str(value)!r} is a {value.type_name} id, not a {type_name} id: pass the `id` "
            f"field of a {type_name}"
        )
    try:
        return uuid.UUID(value.node_id)
    except ValueError:
        raise InvalidInputError(
            f"id {str(value)!r} is not a {type_name} id: pass the `id` field of a {type_name}"
        ) from None
