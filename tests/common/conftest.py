"""Fixtures for the shared kit's tests: an empty database per test, on the real PostgreSQL."""

import io
import logging
from collections.abc import Callable, Iterator

import pytest

from services.common.logging import LogFormat, configure_logging


@pytest.fixture
def database_url(fresh_database: Callable[[str], str], request: pytest.FixtureRequest) -> str:
    """A fresh, empty database for this test (made outside the event loop: the factory runs its own)."""
    return fresh_database(request.node.name[:20].strip("_").lower().replace("[", "_").replace("]", ""))


@pytest.fixture
def second_database_url(fresh_database: Callable[[str], str]) -> str:
    """Another empty database, for tests that need two services' databases (a producer and a consumer)."""
    return fresh_database("second")


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """The kit's JSON logging, configured as a service does, written to a buffer the test can read."""
    yield from _captured_logs("json")


@pytest.fixture
def console_logs() -> Iterator[io.StringIO]:
    """The readable one-line logging of the run command, written to a buffer."""
    yield from _captured_logs("console")


def _captured_logs(log_format: LogFormat) -> Iterator[io.StringIO]:
    root = logging.getLogger()
    touched = [logging.getLogger(name) for name in logging.root.manager.loggerDict] + [root]
    saved = [(logger, logger.handlers[:], logger.level, logger.propagate, logger.disabled) for logger in touched]
    configure_logging("test", log_format=log_format)
    buffer = io.StringIO()
    for handler in root.handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(buffer)
    try:
        yield buffer
    finally:  # configure_logging changes process-wide state: give the other tests theirs back
        for logger, handlers, level, propagate, disabled in saved:
            logger.handlers[:], logger.propagate, logger.disabled = handlers, propagate, disabled
            logger.setLevel(level)
