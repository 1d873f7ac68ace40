"""Serving: the trained student behind MLflow's pyfunc interface (``StudentPyfunc``; input and
output format in ``mindkd.serving.pyfunc``).

``mindkd.serving.dataset.StudentModelDataset`` logs it from the distill pipeline; it is not
imported here, so loading a model needs neither Kedro nor kedro-mlflow.
"""

from mindkd.serving.pyfunc import (
    INPUT_COLUMNS,
    ServingSpec,
    StayInputError,
    StudentPyfunc,
    save_student,
    signature,
    stays_from_stores,
)

__all__ = [
    "INPUT_COLUMNS",
    "ServingSpec",
    "StayInputError",
    "StudentPyfunc",
    "save_student",
    "signature",
    "stays_from_stores",
]
