"""streamdrift's I/O side: Kafka and file sources and sinks, the run loop, config, metrics, CLI."""

__version__ = "0.1.0"
