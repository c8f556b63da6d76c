"""The exceptions stardag raises.

Every error stardag raises on purpose derives from one root::

    StardagError
     ├── TaskDefinitionError     a task class cannot work as written (raised at import)
     ├── ConfigError             settings or target roots are missing or invalid
     ├── RegistryError           a registry or an identity provider refused or was unreachable
     ├── TargetError             reading or writing a task output failed
     │    └── TargetExistsError  a write-once target already exists
     ├── SerializationError      a value could not be dumped to, or loaded from, bytes
     ├── BuildFailedError        tasks failed in a build (``BuildSummary.raise_on_failure``)
     ├── DependencyCycleError    tasks need each other, directly or through others
     └── DependencyFailedError   a running task's dynamic dependency failed

Invalid task *parameters* raise pydantic's ``ValidationError``, which names the field.
"""


class StardagError(Exception):
    """Root of every error stardag raises on purpose."""


class TaskDefinitionError(StardagError, TypeError):
    """A task class is defined in a way that cannot work; raised when the class is defined."""


class ConfigError(StardagError):
    """Settings or target roots are missing or invalid."""


class RegistryError(StardagError):
    """A registry (or its identity provider) refused a request, or could not be reached."""


class TargetError(StardagError):
    """Reading or writing a target failed."""


class TargetExistsError(TargetError, FileExistsError):
    """A write-once target already exists, so this write was not committed."""


class SerializationError(StardagError):
    """A value could not be serialized, or stored bytes could not be loaded."""


class BuildFailedError(StardagError):
    """One or more tasks of a build failed; the message lists them with their errors."""


class DependencyCycleError(StardagError):
    """Tasks need each other, directly or through others; the message names the cycle."""


class DependencyFailedError(StardagError):
    """A task that had started running needed a dynamic dependency that failed."""


class LeaseLostError(StardagError):
    """A task's build lock lapsed (or was taken over) while it ran, so its work was not
    recorded: another worker may be building it."""
