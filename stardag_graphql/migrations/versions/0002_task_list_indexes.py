"""Task list indexes: one per keyset ordering, and events by recording time

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 15:35:33.522365
"""

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_events_build_id_recorded_at_id"),
            ["build_id", "recorded_at", "id"],
            unique=False,
        )

    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tasks_workspace_id_namespace_name"))
        batch_op.drop_index(batch_op.f("ix_tasks_workspace_id_status"))
        batch_op.create_index(
            batch_op.f("ix_tasks_workspace_id_created_at_id"),
            ["workspace_id", "created_at", "id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_tasks_workspace_id_namespace_name_created_at_id"),
            ["workspace_id", "namespace", "name", "created_at", "id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_tasks_workspace_id_status_created_at_id"),
            ["workspace_id", "status", "created_at", "id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_tasks_workspace_id_updated_at_id"),
            ["workspace_id", "updated_at", "id"],
            unique=False,
        )


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tasks_workspace_id_updated_at_id"))
        batch_op.drop_index(batch_op.f("ix_tasks_workspace_id_status_created_at_id"))
        batch_op.drop_index(batch_op.f("ix_tasks_workspace_id_namespace_name_created_at_id"))
        batch_op.drop_index(batch_op.f("ix_tasks_workspace_id_created_at_id"))
        batch_op.create_index(
            batch_op.f("ix_tasks_workspace_id_status"), ["workspace_id", "status"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_tasks_workspace_id_namespace_name"),
            ["workspace_id", "namespace", "name"],
            unique=False,
        )

    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_events_build_id_recorded_at_id"))
