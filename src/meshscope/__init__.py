"""meshscope: traces, metrics and logs from service meshes and OpenTelemetry, correlated."""

__version__ = "0.1.0"
