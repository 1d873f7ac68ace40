"""``tune``: every method of the comparison searched on the val split with the same budget."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
