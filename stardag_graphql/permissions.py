"""Who may do what: one declared table of roles and actions, enforced for every operation.

| action              | owner | admin | member | API key       |
|---------------------|-------|-------|--------|---------------|
| read                | yes   | yes   | yes    | its workspace |
| write               | yes   | yes   | yes    | its workspace |
| manage_api_keys     | yes   | yes   |        |               |
| manage_target_roots | yes   | yes   |        |               |
| manage_workspaces   | yes   | yes   |        |               |
| manage_members      | yes   | yes   |        |               |
| manage_owners       | yes   |       |        |               |

`read` covers every query and subscription; `write` what a build reports (builds, tasks,
events, locks, assets, logs). A test generates the role-by-action matrix from `PERMISSIONS`.
"""

import enum
from collections.abc import Mapping

from stardag_graphql.models import Role


class Action(enum.StrEnum):
    """Something a caller asks to do in an organization."""

    READ = "read"
    WRITE = "write"
    MANAGE_API_KEYS = "manage_api_keys"
    MANAGE_TARGET_ROOTS = "manage_target_roots"
    MANAGE_WORKSPACES = "manage_workspaces"
    MANAGE_MEMBERS = "manage_members"
    MANAGE_OWNERS = "manage_owners"


_MEMBER = frozenset({Action.READ, Action.WRITE})
_ADMIN = _MEMBER | {
    Action.MANAGE_API_KEYS,
    Action.MANAGE_TARGET_ROOTS,
    Action.MANAGE_WORKSPACES,
    Action.MANAGE_MEMBERS,
}

PERMISSIONS: Mapping[Role, frozenset[Action]] = {
    Role.OWNER: _ADMIN | {Action.MANAGE_OWNERS},
    Role.ADMIN: _ADMIN,
    Role.MEMBER: _MEMBER,
}
"""What each role may do in its organization."""

API_KEY_ACTIONS: frozenset[Action] = _MEMBER
"""What a workspace API key may do, in its workspace only."""


def allowed(role: Role | None, action: Action, *, api_key: bool = False) -> bool:
    """Whether a caller with `role` (None: not a member) may do `action`."""
    if api_key:
        return action in API_KEY_ACTIONS
    return role is not None and action in PERMISSIONS[role]
