"""``pairing``: each task's stays paired with at most one chest X-ray, without leakage."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
