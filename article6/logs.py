"""Structured logs: one JSON object per line on standard error.

Fields: ``ts``, ``level``, ``service``, ``logger``, ``msg``, and, when a call passes them in
``extra``, ``transaction_id``, ``message_id``, ``peer`` and ``codes``. Only those whitelisted
fields leave the process, so an object passed by mistake (a key, a payload) is never dumped;
``SigningKey`` and ``TlsMaterial`` also refuse to print their secrets.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

EXTRA_FIELDS = ("transaction_id", "message_id", "peer", "codes", "registry")
_encode = json.JSONEncoder(default=str).encode  # built once: a line is logged per message


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name in EXTRA_FIELDS:
            value = record.__dict__.get(name)
            if value not in (None, "", []):
                entry[name] = value
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return _encode(entry)


def configure_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
