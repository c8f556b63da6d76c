"""The errors a client caused, which the API shows as they are; anything else is masked.

```
RegistryError               a client's request cannot be served as asked
├── InvalidInputError       a value is out of range or malformed (also a ValueError)
├── ForbiddenError          the caller's role does not allow the action
├── NotFoundError           no such object, or not the caller's (also a LookupError)
│   └── UnknownTaskError    a task id not registered in the workspace
└── CredentialError         a token or key is missing, expired or not valid (HTTP 401)
ServerConfigError           the server cannot start as configured
```

Each carries a `code` that the GraphQL layer puts in the error's extensions.
"""


class RegistryError(Exception):
    """A request the registry cannot serve as asked; its message is meant for the client."""

    code = "BAD_REQUEST"


class InvalidInputError(RegistryError, ValueError):
    """A value out of range or malformed: the message names it and what is allowed."""

    code = "BAD_USER_INPUT"


class ForbiddenError(RegistryError):
    """The caller reaches the object but their role does not allow the action."""

    code = "FORBIDDEN"


class NotFoundError(RegistryError, LookupError):
    """No such object, or one outside the caller's organizations (they read the same)."""

    code = "NOT_FOUND"


class UnknownTaskError(NotFoundError):
    """A task id that is not registered in the workspace (register the task first)."""


class CredentialError(RegistryError):
    """A credential the registry cannot accept: the message names which one and what to do.

    It never quotes the credential itself.
    """

    code = "UNAUTHENTICATED"


class ServerConfigError(Exception):
    """The server cannot start as configured: the message says which setting and what to do."""
