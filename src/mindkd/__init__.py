"""MIND-KD: modality-informed knowledge distillation on MIMIC-IV and MIMIC-CXR-JPG."""

# First, before anything of the package runs: no telemetry and no call home in any process that
# imports mindkd (kedro CLI, python -m mindkd..., notebooks, the logged student); see mindkd.telemetry.
from mindkd.telemetry import disable_telemetry

disable_telemetry()

__version__ = "0.1.0"
