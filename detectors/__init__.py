"""Pure drift detection: river detectors over bounded streams, no Kafka, no clock.

Everything a notebook needs is here: ``detect`` over event dicts or a
DataFrame, ``DetectorBank`` for incremental use, ``DetectorConfig`` for
settings.
"""

from detectors.bank import DetectorBank, DriftSignal, EventBatch, detect
from detectors.config import DetectorConfig

__all__ = ["DetectorBank", "DetectorConfig", "DriftSignal", "EventBatch", "detect"]
