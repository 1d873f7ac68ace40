"""Input checks shared by the processing steps and the pipelines' sample builders."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd


def require_columns(
    table: pd.DataFrame,
    columns: Sequence[str],
    name: str,
    error: type[Exception] = ValueError,
) -> None:
    """Raise ``error`` naming ``table`` (``name``), the missing columns and the ones it has."""
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise error(f"{name} lacks column(s) {missing} (has {list(table.columns)})")
