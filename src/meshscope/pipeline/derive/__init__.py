"""Signals derived from spans and proxied requests: RED metrics, the service graph, access logs."""
