"""Head and tail sampling: which traces reach the store (after derivation)."""
