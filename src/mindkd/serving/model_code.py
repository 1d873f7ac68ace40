"""The code file of the logged student (MLflow "models from code"): MLflow runs it when the model
loads, after putting the model's ``code/`` snapshot of ``mindkd`` on ``sys.path``; ``load_context``
then rebuilds the student from the ``spec`` and ``weights`` artifacts. Nothing is unpickled.

Not imported by the package: it is an entry point for MLflow only.
"""

from mlflow.models import set_model

from mindkd.serving.pyfunc import StudentPyfunc

set_model(StudentPyfunc())
