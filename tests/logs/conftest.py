import copy
import io
import json
import logging
import logging.config
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings

from tests.e2e.conftest import broker, e2e_key, mock_process, pytest_runtest_makereport, stack  # noqa: F401
from tests.keys.conftest import echoing_provider  # noqa: F401
from tests.runs.conftest import clean_broker, mock, mock_key  # noqa: F401


class Lines:
    """What the configured console handler wrote, one JSON object a line."""

    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text.splitlines() if line.startswith("{")]

    def with_code(self, code: str) -> list[dict[str, Any]]:
        return [r for r in self.records() if r.get("event_code") == code]


@pytest.fixture
def console() -> Iterator[Lines]:
    """The real console handler of settings.LOGGING (its filters: context, redaction, routine
    tasks), writing into a buffer with the json formatter LOG_FORMAT=json selects."""
    handler = next(h for h in logging.getLogger().handlers if h.get_name() == "console")
    stream = io.StringIO()
    old_stream = handler.setStream(stream)
    old_formatter = handler.formatter
    configurator = logging.config.DictConfigurator(copy.deepcopy(settings.LOGGING))
    handler.setFormatter(configurator.configure_formatter(copy.deepcopy(settings.LOGGING["formatters"]["json"])))
    try:
        yield Lines(stream)
    finally:
        handler.setStream(old_stream)
        handler.setFormatter(old_formatter)
