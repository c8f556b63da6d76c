"""Who may do what: one declared table of roles and actions, and the action of every operation.

| action              | owner | admin | member | API key       |
|---------------------|-------|-------|--------|---------------|
| read                | yes   | yes   | yes    | its workspace |
| write               | yes   | yes   | yes    | its workspace |
| read_members        | yes   | yes   | yes    |               |
| manage_api_keys     | yes   | yes   |        |               |
| manage_target_roots | yes   | yes   |        |               |
| manage_workspaces   | yes   | yes   |        |               |
| manage_members      | yes   | yes   |        |               |
| manage_owners       | yes   |       |        |               |

`OPERATIONS` names the action of every mutation and of every guarded field, as
`Type.field`; the fields of a workspace not named there (builds, tasks, lineage, events,
locks, assets, logs, target roots) and the subscriptions are `read`. Changing an owner's
role, making someone an owner (by role or invite) or removing an owner also needs
`manage_owners`. `SIGNED_IN` are the mutations any signed-in person may make for
themselves, never an API key. A test runs every operation for every role and for anonymous
callers, removed members, revoked keys and other organizations' owners, from this table.
"""

import enum
from collections.abc import Mapping

from stardag_graphql.models import Role


class Action(enum.StrEnum):
    """Something a caller asks to do in an organization."""

    READ = "read"
    WRITE = "write"
    READ_MEMBERS = "read_members"
    MANAGE_API_KEYS = "manage_api_keys"
    MANAGE_TARGET_ROOTS = "manage_target_roots"
    MANAGE_WORKSPACES = "manage_workspaces"
    MANAGE_MEMBERS = "manage_members"
    MANAGE_OWNERS = "manage_owners"


_MEMBER = frozenset({Action.READ, Action.WRITE, Action.READ_MEMBERS})
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

API_KEY_ACTIONS: frozenset[Action] = frozenset({Action.READ, Action.WRITE})
"""What a workspace API key may do, in its workspace only."""

OPERATIONS: Mapping[str, Action] = {
    "Organization.members": Action.READ_MEMBERS,
    "Organization.invites": Action.MANAGE_MEMBERS,
    "Workspace.apiKeys": Action.MANAGE_API_KEYS,
    "Mutation.startBuild": Action.WRITE,
    "Mutation.finishBuild": Action.WRITE,
    "Mutation.registerTasks": Action.WRITE,
    "Mutation.recordEvents": Action.WRITE,
    "Mutation.acquireLock": Action.WRITE,
    "Mutation.renewLock": Action.WRITE,
    "Mutation.releaseLock": Action.WRITE,
    "Mutation.recordEventsUnderLock": Action.WRITE,
    "Mutation.acquireLocks": Action.WRITE,
    "Mutation.renewLocks": Action.WRITE,
    "Mutation.releaseLocks": Action.WRITE,
    "Mutation.recordEventsUnderLocks": Action.WRITE,
    "Mutation.putAsset": Action.WRITE,
    "Mutation.appendLogs": Action.WRITE,
    "Mutation.createApiKey": Action.MANAGE_API_KEYS,
    "Mutation.revokeApiKey": Action.MANAGE_API_KEYS,
    "Mutation.setTargetRoot": Action.MANAGE_TARGET_ROOTS,
    "Mutation.removeTargetRoot": Action.MANAGE_TARGET_ROOTS,
    "Mutation.createWorkspace": Action.MANAGE_WORKSPACES,
    "Mutation.archiveWorkspace": Action.MANAGE_WORKSPACES,
    "Mutation.restoreWorkspace": Action.MANAGE_WORKSPACES,
    "Mutation.renameWorkspace": Action.MANAGE_WORKSPACES,
    "Mutation.inviteMember": Action.MANAGE_MEMBERS,
    "Mutation.revokeInvite": Action.MANAGE_MEMBERS,
    "Mutation.setMemberRole": Action.MANAGE_MEMBERS,
    "Mutation.removeMember": Action.MANAGE_MEMBERS,
}
"""The action each mutation and guarded field needs, by `Type.field`."""

SIGNED_IN: frozenset[str] = frozenset(
    {"Mutation.createOrganization", "Mutation.acceptInvite", "Mutation.declineInvite"}
)
"""Mutations a signed-in person makes for themselves, outside any organization's table."""


def allowed(role: Role | None, action: Action, *, api_key: bool = False) -> bool:
    """Whether a caller with `role` (None: not a member) may do `action`."""
    if api_key:
        return action in API_KEY_ACTIONS
    return role is not None and action in PERMISSIONS[role]


def operation_action(type_name: str, field_name: str) -> Action:
    """The action of the operation `type_name.field_name`: every mutation is in the table;
    a field it does not name is `read`."""
    coordinate = f"{type_name}.{field_name}"
    if type_name == "Mutation":
        return OPERATIONS[coordinate]
    return OPERATIONS.get(coordinate, Action.READ)
