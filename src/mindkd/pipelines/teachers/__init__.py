"""``teachers``: unimodal teacher ensembles per task, trained once, and the logit cache they fill."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
