"""Signals derived from spans and proxied requests: RED metrics, the service graph (the access
logs of its calls are rendered by `meshscope.model.access_logs`)."""
