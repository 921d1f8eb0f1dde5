"""The sidecar: an HTTP proxy in front of one service that traces, measures and logs every
request into and out of it, and exports that to meshscope over OTLP, without code changes.

Entry points: `meshscope sidecar` (`cli.py`), `start_sidecars` / `run_sidecars` (`runner.py`).
"""
