"""A GIN index on task parameters (PostgreSQL only), for parameter filters

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 17:45:00
"""

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None


def upgrade() -> None:
    """Apply this revision."""
    if op.get_bind().dialect.name == "postgresql":
        op.create_index(
            "ix_tasks_parameters_gin",
            "tasks",
            ["parameters"],
            postgresql_using="gin",
            postgresql_ops={"parameters": "jsonb_path_ops"},
        )


def downgrade() -> None:
    """Revert this revision."""
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_tasks_parameters_gin", table_name="tasks")
