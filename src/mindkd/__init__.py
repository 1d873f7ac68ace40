"""MIND-KD: modality-informed knowledge distillation on MIMIC-IV and MIMIC-CXR-JPG."""

# First, before anything of the package runs: no telemetry and no call home in any process that
# imports mindkd (kedro CLI, python -m mindkd..., notebooks, the logged student); see mindkd.telemetry.
# Then one warning of a dependency, not of this project, is dropped from the console
# (mindkd.logfilters).
from mindkd.logfilters import drop_foreign_warnings
from mindkd.telemetry import disable_telemetry

disable_telemetry()
drop_foreign_warnings()

__version__ = "0.1.0"
