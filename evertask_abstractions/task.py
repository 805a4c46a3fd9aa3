"""The task contract: a frozen pydantic model carrying only data."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

__all__ = ["EverTask"]


class EverTask(BaseModel):
    """Base class of every task: plain, frozen, JSON-serializable data.

    Subclass it and declare fields. A task is persisted as JSON at dispatch and loaded
    back (only if its type is registered) after a restart.

    ``task_name`` may be set to a stable name so that moving or renaming the class keeps
    persisted rows loadable::

        class SendWelcomeEmail(EverTask, task_name="emails.welcome"):
            user_email: str
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    __evertask_name__: ClassVar[str | None] = None

    def __init_subclass__(cls, task_name: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.__evertask_name__ = task_name

    @classmethod
    def evertask_type_name(cls) -> str:
        """The name under which rows of this task type are stored."""
        return cls.__evertask_name__ or f"{cls.__module__}:{cls.__qualname__}"
