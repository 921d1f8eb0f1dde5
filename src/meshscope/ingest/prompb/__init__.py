"""Prometheus remote write protobuf messages (generated; see scripts/gen-protos.sh)."""
