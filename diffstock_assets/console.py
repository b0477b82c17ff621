"""The console logger of every diffstock job: a failure is one line, its stack trace stays in
the run's event log (the Dagster UI shows it in full).

`dagster asset materialize` and in-process runs print through it. A failure such as a missing
raw folder then reads `... STEP_FAILURE - clean_bars: Failure: No raw folder for session ...`
instead of ending in forty lines of Dagster internals.
"""

from __future__ import annotations

import logging
import sys

import dagster as dg

STACK_TRACE = "\nStack Trace:\n"
FORMAT = "%(asctime)s - %(levelname)s - %(message)s"


class OneLineErrors(logging.Filter):
    """Cut a record's message at its stack trace and put what remains on one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if STACK_TRACE in message:
            head = message.split(STACK_TRACE, 1)[0]
            record.msg = " ".join(_short(line) for line in head.splitlines() if line.strip())
            record.args = ()
        return True


def _short(line: str) -> str:
    """`dagster._core.definitions.events.Failure: text` -> `Failure: text`."""
    name, sep, rest = line.partition(": ")
    if sep and "." in name and " " not in name:
        return f"{name.rsplit('.', 1)[1]}: {rest}"
    return line.strip()


@dg.logger(
    config_schema={
        "log_level": dg.Field(str, default_value="INFO", description="The threshold."),
    },
    description="Console logging with one-line failures (stack traces stay in the event log).",
)
def concise_console_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    level = init_context.logger_config["log_level"].upper()
    logger = logging.Logger("diffstock", level=level)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(OneLineErrors())
    logger.addHandler(handler)
    return logger
