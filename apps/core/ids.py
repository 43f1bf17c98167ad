"""The types of the ids that cross modules and apps."""

from typing import TypeAlias
from uuid import UUID

# A run's primary key: a UUID, or its text as a URL, a task's message or a command line carries it
# (the ORM takes either, and Redis keys and log lines print either the same way).
RunId: TypeAlias = UUID | str
