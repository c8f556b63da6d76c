"""Server mode: verified emails, archived workspaces, invites matched by email alone

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 18:30:00
"""

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("email_verified", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    with op.batch_alter_table("workspaces", schema=None) as batch_op:
        batch_op.add_column(sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("invites", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_invites_token_hash"), type_="unique")
        batch_op.drop_column("token_hash")


def downgrade() -> None:
    """Revert this revision (pending invites are dropped: they had no token)."""
    op.execute(sa.text("DELETE FROM invites"))
    with op.batch_alter_table("invites", schema=None) as batch_op:
        batch_op.add_column(sa.Column("token_hash", sa.String(length=64), nullable=False))
        batch_op.create_unique_constraint(batch_op.f("uq_invites_token_hash"), ["token_hash"])
    with op.batch_alter_table("workspaces", schema=None) as batch_op:
        batch_op.drop_column("archived_at")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("email_verified")
