"""``cxr``: MIMIC-CXR-JPG to a memory-mappable image store and labelled image tables."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
