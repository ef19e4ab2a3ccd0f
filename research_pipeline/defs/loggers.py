"""Loggers of every run: Dagster's console, and a one-line console for the CLI.

A failed step's event carries Dagster's whole stack trace (30 lines of framework frames) after
its message; the CLI prints each failure's own line and offers the trace behind `-v`. The
`one_line_console` logger (silent unless a run's config gives it a level, which only the CLI
does) writes every log line with anything after "Stack Trace:" cut off.
"""

import logging
import sys

from dagster import Definitions, Field, colored_console_logger, definitions, logger

_TRACE = "\n\nStack Trace:"


class _OneLine(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text.split(_TRACE, 1)[0].rstrip()


@logger(
    {"log_level": Field(str, is_required=False, default_value="CRITICAL")},
    description="The console without stack traces (the CLI's); silent unless configured.",
)
def one_line_console(init_context) -> logging.Logger:
    log = logging.Logger("research_pipeline.runs", init_context.logger_config["log_level"])
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLine("%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S"))
    log.addHandler(handler)
    return log


LOGGERS = {"console": colored_console_logger, "one_line_console": one_line_console}


@definitions
def loggers() -> Definitions:
    return Definitions(loggers=LOGGERS)
