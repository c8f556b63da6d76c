"""stardag: declarative DAGs of persistently stored assets.

::

    import stardag_core as sd

    @sd.task
    def get_range(limit: int) -> list[int]:
        return list(range(limit))

    @sd.task
    def get_sum(integers: sd.Depends[list[int]]) -> int:
        return sum(integers)

    total = get_sum(integers=get_range(limit=4))
    total.output().load()  # once built
"""

from stardag_core.assets import JSONRegistryAsset, MarkdownRegistryAsset, RegistryAsset
from stardag_core.auto_task import AutoTask, default_relpath
from stardag_core.build import build, build_async
from stardag_core.config import Settings, get_settings, use_settings
from stardag_core.decorator import Depends, task
from stardag_core.exceptions import (
    BuildFailedError,
    ConfigError,
    DependencyCycleError,
    DependencyFailedError,
    LeaseLostError,
    RegistryError,
    SerializationError,
    StardagError,
    TargetError,
    TargetExistsError,
    TaskDefinitionError,
)
from stardag_core.executors import (
    DaskExecutor,
    Executor,
    InlineExecutor,
    ProcessExecutor,
    ThreadExecutor,
)
from stardag_core.families import namespace
from stardag_core.params import Param
from stardag_core.registry import (
    BuildLocks,
    BuildOutcome,
    BuildRecord,
    FoundTask,
    Lease,
    LockingRegistry,
    LogLine,
    NoOpRegistry,
    Registry,
    TaskEvent,
    TaskEventKind,
)
from stardag_core.scheduler import FailMode
from stardag_core.serializers import (
    JSON,
    Bytes,
    GZip,
    Numpy,
    Parquet,
    Pickle,
    Serializer,
    Text,
    serializer_for,
)
from stardag_core.summary import BuildSummary, TaskFailure
from stardag_core.targets import (
    DirectoryTarget,
    FileTarget,
    Target,
    exists_many,
    exists_many_async,
)
from stardag_core.task_loads import TaskLoads
from stardag_core.tasks import Task, TaskStruct, flatten_targets, flatten_tasks

__all__ = [
    "JSON",
    "AutoTask",
    "BuildFailedError",
    "BuildLocks",
    "BuildOutcome",
    "BuildRecord",
    "BuildSummary",
    "Bytes",
    "ConfigError",
    "DaskExecutor",
    "DependencyCycleError",
    "DependencyFailedError",
    "Depends",
    "DirectoryTarget",
    "Executor",
    "FailMode",
    "FileTarget",
    "FoundTask",
    "GZip",
    "InlineExecutor",
    "JSONRegistryAsset",
    "Lease",
    "LeaseLostError",
    "LockingRegistry",
    "LogLine",
    "MarkdownRegistryAsset",
    "NoOpRegistry",
    "Numpy",
    "Param",
    "Parquet",
    "Pickle",
    "ProcessExecutor",
    "Registry",
    "RegistryAsset",
    "RegistryError",
    "SerializationError",
    "Serializer",
    "Settings",
    "StardagError",
    "Target",
    "TargetError",
    "TargetExistsError",
    "Task",
    "TaskDefinitionError",
    "TaskEvent",
    "TaskEventKind",
    "TaskFailure",
    "TaskLoads",
    "TaskStruct",
    "Text",
    "ThreadExecutor",
    "build",
    "build_async",
    "default_relpath",
    "exists_many",
    "exists_many_async",
    "flatten_targets",
    "flatten_tasks",
    "get_settings",
    "namespace",
    "serializer_for",
    "task",
    "use_settings",
]
