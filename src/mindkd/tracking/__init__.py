"""MLflow run organisation and comparison.

``runs``: experiment names, run names and tag keys (one experiment per task); ``provenance``: the
git state, data fingerprint, package versions and command every run is tagged with; ``compare``:
tables of distill runs and differences between two runs (``python -m mindkd.tracking``). The
project hook that opens the runs is ``mindkd.hooks.TrackingHook``.
"""
