"""The execution context that resolves plain leaf fields inline answers exactly as
graphql-core does: the same data, and the same errors where a value is refused."""

import enum
from typing import Any

import strawberry

from stardag_graphql.execution import LeafFastExecutionContext


@strawberry.enum
class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@strawberry.type
class Item:
    name: str
    note: str | None
    colour: Colour
    count: int
    broken: str  # holds None in `ITEMS[1]`: a non-null field without a value

    @strawberry.field
    def shout(self, times: int = 1) -> str:
        return self.name.upper() * times


ITEMS = [
    Item(name="a", note=None, colour=Colour.RED, count=2**40, broken="ok"),
    Item(name="b", note="n", colour=Colour.BLUE, count=0, broken=None),  # type: ignore[arg-type]
]


@strawberry.type
class Query:
    @strawberry.field
    def items(self) -> list[Item]:
        return ITEMS

    @strawberry.field
    def first(self) -> Item:
        return ITEMS[0]


def answers(query: str, **schema_options: Any) -> tuple[Any, list[str]]:
    schema = strawberry.Schema(query=Query, **schema_options)
    result = schema.execute_sync(query)
    return result.data, sorted(f"{e.path}: {e.message}" for e in result.errors or ())


def test_plain_leaves_read_inline_answer_as_graphql_core_does() -> None:
    query = "{ first { name note colour alias: name shout(times: 2) } }"

    fast = answers(query, execution_context_class=LeafFastExecutionContext)

    assert fast == answers(query)
    assert fast == (
        {"first": {"name": "a", "note": None, "colour": "RED", "alias": "a", "shout": "AA"}},
        [],
    )


def test_a_refused_leaf_value_reports_the_same_error() -> None:
    # `count` is beyond GraphQL's 32-bit Int; `broken` is null in a non-null field.
    query = "{ items { name count broken } }"

    fast = answers(query, execution_context_class=LeafFastExecutionContext)

    assert fast == answers(query)
    assert fast[0] is None  # `items` is a non-null list: the nulls reach the root
    assert any("32-bit" in error for error in fast[1])
