"""Errors shared across layers, in a leaf module that imports nothing of meshscope: the
configuration parsers of every section raise `ConfigError`, and `config.py` imports those
parsers (so they must not import it back)."""

from __future__ import annotations


class ConfigError(ValueError):
    """The configuration is invalid; the message says which setting and why."""
