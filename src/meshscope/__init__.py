"""meshscope: traces, metrics and logs from service meshes and OpenTelemetry, correlated."""

__version__ = "0.1.0"

from meshscope.instrument import instrument  # meshscope.instrument(service=...)

__all__ = ["__version__", "instrument"]
