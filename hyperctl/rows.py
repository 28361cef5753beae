"""Rows: what the Python API gives as a table (a compare, a job's metrics): a list of dicts that
knows its columns, and becomes a pandas DataFrame where pandas is installed (never a dependency)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class Rows(list[dict[str, Any]]):
    """A table as a list of rows (dicts by column), with its columns in order."""

    def __init__(self, rows: Iterable[dict[str, Any]] = (), columns: Iterable[str] | None = None) -> None:
        super().__init__(rows)
        if columns is None:  # every key of every row, in the order they first come
            columns = dict.fromkeys(key for row in self for key in row)
        self.columns = list(columns)

    def to_pandas(self) -> Any:
        """A pandas DataFrame of the rows, its columns in order."""
        import importlib

        try:
            pandas = importlib.import_module("pandas")  # by name: no stubs needed where it is not installed
        except ImportError:
            raise ImportError(
                "Rows.to_pandas() needs pandas, which hyperctl does not install: pip install pandas"
            ) from None
        return pandas.DataFrame(list(self), columns=self.columns)

    def __repr__(self) -> str:
        return f"Rows({list(self)!r}, columns={self.columns!r})"
