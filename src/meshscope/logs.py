"""meshscope's own logs: structured JSON lines via structlog, through the stdlib logging tree."""

from __future__ import annotations

import logging
import sys

import structlog

# uvicorn passes its message again with ANSI colour codes as `extra`; the JSON has the plain one.
_DROPPED_EXTRAS = ("color_message",)
# Libraries whose loggers may have been given handlers of their own (uvicorn's default config
# does that): their records go through the root's one handler instead, once.
_LIBRARY_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")
# Clients that log every request at INFO (httpx: each scrape, forward and alert push): their
# warnings and errors come through, not a line per request.
_CHATTY_LOGGERS = ("httpx", "httpcore")


def _drop_extras(
    logger: object, method: str, event: structlog.types.EventDict
) -> structlog.types.EventDict:
    for key in _DROPPED_EXTRAS:
        event.pop(key, None)
    return event


def configure_logging(level: int = logging.INFO) -> None:
    """JSON lines on stderr with timestamp, level, logger and any bound or `extra` fields,
    one handler for every logger."""
    processors: list[structlog.types.Processor] = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        _drop_extras,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=processors,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.JSONRenderer(),
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in _LIBRARY_LOGGERS:
        library = logging.getLogger(name)
        library.handlers.clear()
        library.propagate = True
    for name in _CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
