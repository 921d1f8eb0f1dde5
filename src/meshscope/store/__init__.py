"""Storage behind small protocols: memory (tests, node), DuckDB (default), ClickHouse."""
