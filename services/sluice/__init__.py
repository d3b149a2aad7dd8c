"""Sluice: serve ML models safely on Kubernetes (or on one machine with `sluice up`)."""

__version__ = "0.1.0"
