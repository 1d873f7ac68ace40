"""MIND-KD: modality-informed knowledge distillation on MIMIC-IV and MIMIC-CXR-JPG."""

__version__ = "0.1.0"
