"""Receivers: wire formats -> `Batch`. Decoders are pure functions; transports call them."""
