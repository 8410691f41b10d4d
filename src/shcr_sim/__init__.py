"""shcr-sim: an integration-engine simulator for NHS shared care records."""

__version__ = "0.1.0"
