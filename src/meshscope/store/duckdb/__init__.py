"""The embedded DuckDB backend: one file, one owning process."""

from meshscope.store.duckdb.storage import DuckDBStorage

__all__ = ["DuckDBStorage"]
