"""A logging filter for warnings of dependencies that warnings filters cannot silence.

>>> import logging
>>> drop = DropMessages(["Add type hints to the `predict` method"])
>>> record = logging.LogRecord("py.warnings", 30, "x.py", 1, "UserWarning: Add type hints to the "
...                            "`predict` method to enable data validation", None, None)
>>> drop.filter(record)
False
"""

from __future__ import annotations

import logging
from collections.abc import Iterable


class DropMessages(logging.Filter):
    """Drops records whose message contains one of ``fragments``.

    Used on ``py.warnings`` (where Kedro's logging receives warnings) by
    ``drop_foreign_warnings``."""

    def __init__(self, fragments: Iterable[str] = ()) -> None:
        super().__init__()
        self.fragments = tuple(fragments)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(fragment in message for fragment in self.fragments)


# MLflow re-enables UserWarning inside its own check of kedro-mlflow's KedroPipelineModel (an
# un-annotated ``predict``, imported with kedro-mlflow's hook and never used here), so warnings
# filters cannot drop it. The project's own pyfunc is annotated.
FOREIGN_WARNINGS: tuple[str, ...] = ("Add type hints to the `predict` method",)


def drop_foreign_warnings() -> None:
    """Drop ``FOREIGN_WARNINGS`` from ``py.warnings`` (once per process; Kedro's logging
    configuration keeps the logger's filters, as it does not configure that logger)."""
    logger = logging.getLogger("py.warnings")
    if not any(isinstance(f, DropMessages) for f in logger.filters):
        logger.addFilter(DropMessages(FOREIGN_WARNINGS))
