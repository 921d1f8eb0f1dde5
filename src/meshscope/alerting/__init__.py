"""Sending SLO burn-rate alerts to Alertmanager, as Prometheus's notifier does."""
