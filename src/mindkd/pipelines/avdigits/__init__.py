"""``avdigits``: spoken + handwritten digits (FSDD, scikit-learn) as a multimodal task's inputs.

Run on request only (``kedro run --pipelines avdigits``): it is not part of ``__default__``.
"""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
