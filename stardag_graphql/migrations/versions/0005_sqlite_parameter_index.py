"""An index of task parameter values on SQLite, kept by triggers, for parameter filters

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 07:00:00

PostgreSQL answers parameter filters from the GIN index of 0003; this revision does nothing
there. On SQLite, `task_parameter_values` holds a row per scalar leaf of each task's
parameters (see `TaskParameterValue`), written by triggers on `tasks` and filled here for the
tasks already registered.
"""

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None

TRIGGERS = ("tasks_index_parameters", "tasks_unindex_parameters", "tasks_reindex_parameters")


def _leaves(row: str) -> str:
    """The index rows of task `row`: `new` or `old` in a trigger, `tasks` for all tasks."""
    tasks = "tasks, " if row == "tasks" else ""
    return (
        f"SELECT {row}.workspace_id, leaf.key, leaf.atom, {row}.created_at, "
        f"{row}.id FROM {tasks}json_tree({row}.parameters) AS leaf "
        "WHERE leaf.type NOT IN ('object', 'array', 'null') AND typeof(leaf.key) = 'text' "
        "AND substr(leaf.key, 1, 2) <> '__' "
        "AND (leaf.type <> 'text' OR length(leaf.atom) <= 256)"
    )


INSERT = (
    "INSERT OR IGNORE INTO task_parameter_values "
    "(workspace_id, name, value, created_at, task_pk) {leaves};"
)
DELETE = (
    "DELETE FROM task_parameter_values "
    "WHERE (workspace_id, name, value, created_at, task_pk) IN ({leaves});"
)


def upgrade() -> None:
    """Apply this revision."""
    if op.get_bind().dialect.name != "sqlite":
        return
    op.create_table(
        "task_parameter_values",
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("task_pk", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint(
            "workspace_id",
            "name",
            "value",
            "created_at",
            "task_pk",
            name=op.f("pk_task_parameter_values"),
        ),
        sqlite_with_rowid=False,
    )
    insert, delete = INSERT.format(leaves=_leaves("new")), DELETE.format(leaves=_leaves("old"))
    index, unindex, reindex = TRIGGERS
    op.execute(f"CREATE TRIGGER {index} AFTER INSERT ON tasks BEGIN {insert} END")
    op.execute(f"CREATE TRIGGER {unindex} AFTER DELETE ON tasks BEGIN {delete} END")
    op.execute(
        f"CREATE TRIGGER {reindex} "
        "AFTER UPDATE OF id, workspace_id, parameters, created_at ON tasks "
        f"BEGIN {delete} {insert} END"
    )
    op.execute(INSERT.format(leaves=_leaves("tasks")))


def downgrade() -> None:
    """Revert this revision."""
    if op.get_bind().dialect.name != "sqlite":
        return
    for trigger in TRIGGERS:
        op.execute(f"DROP TRIGGER {trigger}")
    op.drop_table("task_parameter_values")
