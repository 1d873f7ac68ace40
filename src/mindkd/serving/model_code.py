"""The code file of the logged student (MLflow "models from code"): MLflow runs it when the model
loads, after putting the model's ``code/`` snapshot of ``mindkd`` on ``sys.path``; ``load_context``
then rebuilds the student from the ``spec`` and ``weights`` artifacts. Nothing is unpickled.

It first turns MLflow's (and Kedro's) telemetry off in the loading process, also when that process
imported ``mlflow`` without the variables set (``mindkd.telemetry``).

Not imported by the package: it is an entry point for MLflow only.
"""

from mindkd.telemetry import disable_telemetry

disable_telemetry()

from mlflow.models import set_model  # noqa: E402 - after telemetry is off

from mindkd.serving.pyfunc import StudentPyfunc  # noqa: E402

set_model(StudentPyfunc())
