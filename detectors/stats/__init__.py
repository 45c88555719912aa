"""Statistics for the detectors, one per module: pure numpy/stdlib, no other detectors
module imported."""
