"""Cluster mode (ADR 0015): trace-id ownership over peers, forwarding, sharded ClickHouse."""
