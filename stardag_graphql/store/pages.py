"""Keyset pagination: pages that continue after the last row's sort key, and opaque cursors.

A page is read with `WHERE (k1, k2, ...) > (cursor values) ORDER BY k1, k2, ... LIMIT n + 1`
(`<` and descending order when the list runs newest first); the extra row tells whether there
is a next page. The last key column must be unique, so the order is total and no row is
skipped or repeated when rows are added between pages. A cursor is the sort key of a row,
tagged with the ordering it belongs to, as base64url JSON: a cursor from another list or
another ordering is refused instead of silently starting elsewhere.
"""

import base64
import binascii
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from stardag_graphql.errors import InvalidInputError

T = TypeVar("T")

MAX_PAGE_SIZE = 100


@dataclass(frozen=True)
class Ordering:
    """A total order over a list's rows: `name` tags its cursors; the last key is unique."""

    name: str
    keys: Sequence[InstrumentedAttribute[Any]]
    descending: bool = False

    def cursor(self, row: object) -> str:
        """The opaque cursor that continues after `row`."""
        values = [_encode(getattr(row, key.key)) for key in self.keys]
        raw = json.dumps([self.name, values], separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def decode(self, cursor: str) -> tuple[Any, ...]:
        """The sort key in `cursor`; `InvalidInputError` if it is not a cursor of this order."""
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            name, values = json.loads(raw)
            if name != self.name or len(values) != len(self.keys):
                raise ValueError(name)
            return tuple(
                _decode(key.type.python_type, value)
                for key, value in zip(self.keys, values, strict=True)
            )
        except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
            raise InvalidInputError(
                f"cursor {cursor[:60]!r} is not a cursor of this list ordered by {self.name}: "
                "pass the endCursor of a page of the same query"
            ) from None


@dataclass(frozen=True)
class Page(Generic[T]):
    """Rows of one page, in order, and whether more follow."""

    rows: list[T]
    has_next: bool


def check_page_size(first: int) -> None:
    """Refuse a page size outside 1 to `MAX_PAGE_SIZE`."""
    if not 1 <= first <= MAX_PAGE_SIZE:
        raise InvalidInputError(f"first must be between 1 and {MAX_PAGE_SIZE}, got {first}")


async def read_page(
    session: AsyncSession,
    statement: Select[T],
    ordering: Ordering,
    first: int,
    after: str | None,
) -> Page[T]:
    """The `first` rows of `statement` in `ordering`, after the row of cursor `after`."""
    check_page_size(first)
    if after is not None:
        key = tuple_(*ordering.keys)
        values = tuple_(*ordering.decode(after))
        statement = statement.where(key < values if ordering.descending else key > values)
    columns = [key.desc() if ordering.descending else key.asc() for key in ordering.keys]
    rows = list(await session.scalars(statement.order_by(*columns).limit(first + 1)))
    return Page(rows[:first], len(rows) > first)


def _encode(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _decode(kind: type, value: object) -> object:
    if kind is datetime and isinstance(value, str):
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise ValueError(value)
        return parsed
    if kind is uuid.UUID and isinstance(value, str):
        return uuid.UUID(value)
    if isinstance(value, kind) and not isinstance(value, bool):
        return value
    raise ValueError(value)
