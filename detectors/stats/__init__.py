"""One statistic per module: pure numpy/stdlib, no other detectors module imported."""
