"""Structured logs and the request id.

Log records carry only what is safe: ids, routes, statuses, durations, types. Never names, phones, ID numbers,
addresses or free text from a record. Callers pass such safe facts in `extra=`; the message itself is a constant.
Production writes one JSON object a line (`json`); the run command prints one readable line a record (`console`).
"""

import contextvars
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "color_message"}
LogFormat = Literal["json", "console"]


def _message(record: logging.LogRecord) -> str:
    # Our messages are constants; uvicorn's carry only a process id, a host or a port in their arguments.
    if record.name.startswith("uvicorn") and record.args:
        return record.getMessage()
    return record.msg if isinstance(record.msg, str) else type(record.msg).__name__


def _facts(record: logging.LogRecord) -> dict[str, Any]:
    facts = {key: value for key, value in record.__dict__.items() if key not in _RESERVED and not key.startswith("_")}
    if record.exc_info and record.exc_info[0] is not None:
        # The type only: exception messages can carry values from the request.
        facts["error_type"] = record.exc_info[0].__name__
    return facts


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str):
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": _message(record),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        entry.update(_facts(record))
        return orjson.dumps(entry, default=str).decode()


class ConsoleFormatter(logging.Formatter):
    """One readable line a record, for a person watching `python3 manage.py run`."""

    def __init__(self, service: str):
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        time = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        facts = _facts(record)
        if record.name == "cp.access":
            text = f"{facts.pop('method', '')} {facts.pop('route', '')} -> {facts.pop('status', '')} " \
                   f"{facts.pop('duration_ms', '')} ms"
        else:
            text = _message(record)
        extra = " ".join(f"{key}={value}" for key, value in facts.items())
        return f"{time} {self.service:<9} {record.levelname.lower():<7} {text}" + (f"  {extra}" if extra else "")


def configure_logging(service: str, level: str = "INFO", log_format: LogFormat = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service) if log_format == "json" else ConsoleFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's access log prints full URLs with query strings (search terms are personal data).
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True
    # Client libraries log full URLs, query strings included: keep them to warnings.
    for name in ("httpx", "httpcore", "aiohttp"):
        logging.getLogger(name).setLevel(logging.WARNING)


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(f"cp.{name}")
