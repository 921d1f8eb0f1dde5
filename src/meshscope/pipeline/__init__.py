"""Batch -> Batch: derive signals (before sampling), sample, hand to the store."""
