"""Task assets: named markdown or JSON documents, replaced when put again under the same name."""

import json
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from stardag_graphql.errors import InvalidInputError
from stardag_graphql.models import Asset, AssetKind, utcnow
from stardag_graphql.store.tasks import task_pks
from stardag_graphql.store.upsert import insert

# The length of `Asset.name`.
MAX_NAME_LENGTH = 200


async def put_asset(
    session: AsyncSession,
    workspace_id: uuid.UUID,
    task_id: str,
    name: str,
    kind: AssetKind | str,
    body: str,
) -> Asset:
    """Attach the asset `name` to a task, replacing any asset of that name; returns it.

    A JSON asset's body must be a JSON object; it is stored parsed. Raises `UnknownTaskError`
    when the task is not registered in the workspace.
    """
    if not name or len(name) > MAX_NAME_LENGTH:
        raise InvalidInputError(f"name must be 1 to {MAX_NAME_LENGTH} characters, got {name!r}")
    try:
        kind = AssetKind(kind)
    except ValueError:
        choices = ", ".join(member.value for member in AssetKind)
        raise InvalidInputError(f"kind must be one of {choices}, got {kind!r}") from None
    text, data = (body, None) if kind is AssetKind.MARKDOWN else (None, _json_object(body))
    pks = await task_pks(session, workspace_id, [task_id])
    statement = insert(session, Asset).values(
        id=uuid.uuid4(),
        workspace_id=workspace_id,
        task_pk=pks[task_id],
        name=name,
        kind=kind,
        body=text,
        data=data,
        created_at=utcnow(),
    )
    statement = statement.on_conflict_do_update(
        index_elements=["task_pk", "name"],
        set_={"kind": kind, "body": text, "data": statement.excluded.data},
    )
    asset = await session.scalars(
        statement.returning(Asset), execution_options={"populate_existing": True}
    )
    return asset.one()


async def list_assets(session: AsyncSession, workspace_id: uuid.UUID, task_id: str) -> list[Asset]:
    """A task's assets, by name; raises `UnknownTaskError` for a task not in the workspace."""
    pks = await task_pks(session, workspace_id, [task_id])
    rows = await session.scalars(
        select(Asset)
        .where(Asset.workspace_id == workspace_id, Asset.task_pk == pks[task_id])
        .order_by(Asset.name)
    )
    return list(rows)


def _json_object(body: str) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError as error:
        raise InvalidInputError(
            f"body of a JSON asset is not valid JSON ({error}): {body[:80]!r}"
        ) from None
    if not isinstance(data, dict):
        raise InvalidInputError(f"body of a JSON asset must be a JSON object, got {body[:80]!r}")
    return data


async def assets_of(
    session: AsyncSession, task_pks: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[Asset]]:
    """For each of the tasks `task_pks`, its assets by name."""
    rows = await session.scalars(
        select(Asset).where(Asset.task_pk.in_(task_pks)).order_by(Asset.name)
    )
    groups: dict[uuid.UUID, list[Asset]] = {pk: [] for pk in task_pks}
    for asset in rows:
        groups[asset.task_pk].append(asset)
    return groups
