"""Statistics of a window of values against a reference: pure functions on numpy arrays."""
