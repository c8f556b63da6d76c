"""`schema.graphql` is the printed schema: a test fails when it drifts, and names what breaks.

The comparison runs on printed SDL on both sides: graphql-core cannot turn the schema's
`JSON` default values (`{}`) back into literals, so the committed file is compared with
Strawberry's printout, and the changes are found between the two as parsed by graphql-core.
"""

import dataclasses
from pathlib import Path

from graphql import (
    DocumentNode,
    ObjectTypeDefinitionNode,
    build_schema,
    find_breaking_changes,
    find_dangerous_changes,
    parse,
    print_ast,
)

from stardag_graphql.schema import schema

SCHEMA_FILE = Path(__file__).parents[2] / "schema.graphql"

REGENERATE = (
    'uv run --locked python -c "from pathlib import Path; '
    "from stardag_graphql.schema import schema; "
    "Path('schema.graphql').write_text(schema.as_str() + '\\n')\""
)


def test_the_committed_schema_is_the_printed_schema() -> None:
    committed = SCHEMA_FILE.read_text(encoding="utf-8")
    current = schema.as_str() + "\n"

    assert committed == current, drift_report(committed, current)


def test_the_drift_report_names_a_removed_field_as_breaking() -> None:
    committed = SCHEMA_FILE.read_text(encoding="utf-8")
    without_task_id = remove_field(committed, "Task", "taskId")

    report = drift_report(committed, without_task_id)

    assert "Breaking changes (1):\n  FIELD_REMOVED: Field Task.taskId was removed.\n" in report
    assert REGENERATE in report


def drift_report(committed: str, current: str) -> str:
    """Why the committed SDL differs from the current one: what breaks clients, and the fix."""
    old, new = build_schema(committed), build_schema(current)
    breaking = [f"{c.type.name}: {c.description}" for c in find_breaking_changes(old, new)]
    dangerous = [f"{c.type.name}: {c.description}" for c in find_dangerous_changes(old, new)]
    lines = [
        f"{SCHEMA_FILE.name} is not the printed schema of stardag_graphql.schema.",
        f"Regenerate it from the repository root:\n  {REGENERATE}",
        f"Breaking changes ({len(breaking)}):",
        *(f"  {line}" for line in breaking or ["none"]),
        f"Dangerous changes ({len(dangerous)}):",
        *(f"  {line}" for line in dangerous or ["none"]),
    ]
    return "\n".join(lines)


def remove_field(sdl: str, type_name: str, field_name: str) -> str:
    """`sdl` with the field `field_name` taken out of the object type `type_name`."""
    definitions = []
    for definition in parse(sdl).definitions:
        if isinstance(definition, ObjectTypeDefinitionNode) and definition.name.value == type_name:
            fields = definition.fields or ()
            kept = tuple(field for field in fields if field.name.value != field_name)
            assert len(kept) < len(fields), f"no field {field_name} in {type_name}"
            definition = dataclasses.replace(definition, fields=kept)
        definitions.append(definition)
    return print_ast(DocumentNode(definitions=tuple(definitions)))
