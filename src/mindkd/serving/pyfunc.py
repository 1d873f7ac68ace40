"""The trained student as an MLflow pyfunc model: prepared inputs of stays in, probabilities out.

The model directory holds the student's state dict (``artifacts/weights.pt``, loaded with
``torch.load(weights_only=True)``), its card (``artifacts/spec.json``: architecture, task, labels,
routing, image normaliser, EHR input; the distill stage's ``<task>.distill.mind.spec``; the EHR
encoder's ``in_channels`` is in its settings, so the network is rebuilt at the width it was trained
at) and a snapshot of the ``mindkd`` package (``code/mindkd``, put on ``sys.path`` by MLflow when the
model loads), so a model from the registry rebuilds without the project's catalog and with the code
that trained it.
Requirements: ``torch`` (pinned to the version that trained it) and ``tqdm``; MLflow brings numpy,
pandas and pydantic.

Input: a ``pandas.DataFrame``, one row per stay (``INPUT_COLUMNS``):

=============  ========================  ====================================================
column         per row                   meaning
=============  ========================  ====================================================
timeseries     array ``(L, W)`` float    the stay's prepared hourly tensor as the ``ehr`` stage
                                         writes it (``<task>.timeseries`` values of the stay,
                                         first ``L`` hours). ``W`` is the width of the store the
                                         model was trained on, the EHR encoder's ``in_channels``
                                         in its spec: 34 under ``ehr.categorical: continuous``
                                         (17 standardised values, 17 masks), 59 under
                                         ``one_hot``; the spec's ``ehr_input.features`` names
                                         every column
length         int, optional             hours observed (1..L); default ``L``
image          array ``(S, S)`` uint8,   the paired X-ray as in the image store (values 0..255,
               optional (None / absent)  side ``S`` of the spec's normaliser); normalised inside
stay_id        int, optional             carried to the output
=============  ========================  ====================================================

Nested lists work as well as arrays (``mlflow models serve`` takes ``dataframe_records``).

Output: a ``DataFrame`` with the input's index: ``stay_id`` (when given), ``head`` (the head that
served the row: ``fused`` for a stay with an image, or ``mean`` with the spec's ``routing: mean``;
``ehr`` for an EHR-only stay, which runs the EHR encoder and head only) and one probability column
per label of the task (sigmoid per label; softmax across labels for a multiclass task).
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import mlflow.pyfunc
import numpy as np
import pandas as pd
import torch
from mlflow.models import ModelSignature
from mlflow.pyfunc import PythonModel
from mlflow.types.schema import Array, ColSpec, DataType, Schema
from torch import Tensor

import mindkd
from mindkd.models.batch import TaskKind
from mindkd.models.spec import ImageNormaliser, NetworkSpec, build_network
from mindkd.models.student import MultiHeadStudent
from mindkd.training.data import MultiModalDataset, SampleTable, collate_multimodal

if TYPE_CHECKING:  # the stores need Kedro; serving a model does not
    from mindkd.io.array_store import ArrayStore

logger = logging.getLogger(__name__)

WEIGHTS, SPEC = "weights", "spec"  # artifact keys
INPUT_COLUMNS: tuple[str, ...] = ("stay_id", "timeseries", "length", "image")
MODEL_CODE = Path(__file__).with_name("model_code.py")
MAX_PROBLEMS = 10  # input problems listed in one error (a whole store of the wrong width: 10 rows)


class StayInputError(ValueError):
    """Rows of a prediction request that do not fit the model's input format."""


class ServingSpec(NetworkSpec):
    """What serving reads from the distill stage's model card (``ModelSpec`` JSON): the network
    (``mindkd.models.spec.NetworkSpec``, built by the same ``build_network`` as in training). Only
    the multi-head student is served; the rest of the card (loss, fit settings, sizes) rides along
    in the artifact and is ignored here."""

    architecture: Literal["multi_head"]


class StudentPyfunc(PythonModel):
    """The MIND student behind MLflow's pyfunc interface (input and output: see the module doc).

    ``StudentPyfunc(spec, weights)`` is ready in memory; a logged copy is rebuilt in
    ``load_context`` from its ``spec`` and ``weights`` artifacts (``save_student`` and
    ``StudentModelDataset`` write them, with ``model_code.py`` as the model's code, so nothing
    is unpickled on load). ``model`` is the torch module (eval mode, CPU).
    """

    def __init__(
        self,
        spec: Mapping[str, Any] | None = None,
        weights: Mapping[str, Tensor] | None = None,
        batch_size: int = 256,
    ) -> None:
        self.batch_size = batch_size
        self.card: dict[str, Any] | None = None
        self.spec: ServingSpec | None = None
        self.model: MultiHeadStudent | None = None
        if (spec is None) != (weights is None):
            raise ValueError("give both spec and weights, or neither (then load_context builds)")
        if spec is not None and weights is not None:
            self._build(spec, weights)

    def _build(self, spec: Mapping[str, Any], weights: Mapping[str, Tensor]) -> None:
        self.card = json.loads(json.dumps(dict(spec)))  # a plain JSON copy
        self.spec = ServingSpec.model_validate(self.card)
        model = build_network(self.spec)
        if not isinstance(model, MultiHeadStudent):  # ServingSpec admits multi_head only
            raise TypeError(f"serving builds the multi-head student, got {type(model).__name__}")
        model.load_state_dict(weights)
        self.model = model.to("cpu").eval()

    def load_context(self, context: Any) -> None:
        artifacts = getattr(context, "artifacts", None) or {}
        if WEIGHTS not in artifacts or SPEC not in artifacts:
            if self.model is None:
                raise ValueError(f"the model has no {SPEC!r} and {WEIGHTS!r} artifacts")
            return
        spec = json.loads(Path(artifacts[SPEC]).read_text())
        weights = torch.load(artifacts[WEIGHTS], map_location="cpu", weights_only=True)
        self._build(spec, weights)

    @property
    def ehr_channels(self) -> int:
        """Columns per hour of ``timeseries``: the ``in_channels`` the spec built the EHR encoder
        with (the width of the store the student was trained on)."""
        if self.model is None or self.model.ehr_encoder is None:
            raise RuntimeError("the student is not built: load it with mlflow.pyfunc.load_model")
        return int(self.model.ehr_encoder.in_channels)

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """Probabilities per label and the head that served each stay (one row per input row)."""
        if self.model is None or self.spec is None:
            raise RuntimeError("the student is not built: load it with mlflow.pyfunc.load_model")
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        stays = _read_stays(frame, self.ehr_channels, self.spec.image.image_size)
        dataset = stays.dataset(len(self.spec.labels), self.spec.image)
        logits = np.concatenate(
            [self._routed(dataset, start) for start in range(0, len(frame), self.batch_size)]
        )
        out = pd.DataFrame(
            _probabilities(logits, self.spec.kind),
            columns=list(self.spec.labels),
            index=frame.index,
        )
        paired_head = "fused" if self.spec.routing == "fused" else "mean"
        out.insert(0, "head", np.where(stays.paired, paired_head, "ehr"))
        if "stay_id" in frame.columns:
            out.insert(0, "stay_id", frame["stay_id"].to_numpy())
        return out

    def _routed(self, dataset: MultiModalDataset, start: int) -> np.ndarray:
        assert self.model is not None and self.spec is not None
        rows = range(start, min(start + self.batch_size, len(dataset)))
        batch, _ = collate_multimodal(dataset.__getitems__(list(rows)))
        with torch.inference_mode():
            return self.model.predict(batch, self.spec.routing).float().numpy()  # (n, K)


def _probabilities(logits: np.ndarray, kind: TaskKind) -> np.ndarray:
    z = torch.from_numpy(logits).double()
    probs = torch.softmax(z, dim=1) if kind == "multiclass" else torch.sigmoid(z)
    return probs.numpy()


# ------------------------------------------------------------------------------------- inputs
class _Stays:
    """The rows of a request as the arrays ``MultiModalDataset`` reads (EHR padded to the longest)."""

    def __init__(self, series: list[np.ndarray], lengths: list[int], images: list[Any]) -> None:
        steps = max(len(s) for s in series)
        self.values = np.zeros((len(series), steps, series[0].shape[1]), dtype=np.float32)
        for row, s in enumerate(series):
            self.values[row, : len(s)] = s  # (n, T, 2C), zero past each stay's hours
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.paired = np.array([image is not None for image in images])
        self.images = np.stack([i for i in images if i is not None]) if self.paired.any() else None
        self.cxr_row = np.full(len(series), -1, dtype=np.int64)
        self.cxr_row[self.paired] = np.arange(int(self.paired.sum()))

    def dataset(self, num_outputs: int, image: ImageNormaliser) -> MultiModalDataset:
        n = len(self.lengths)
        table = SampleTable(
            ehr_row=np.arange(n),
            cxr_row=self.cxr_row,
            labels=np.full((n, num_outputs), np.nan, dtype=np.float32),
        )
        return MultiModalDataset(
            table,
            ehr_values=self.values,
            ehr_lengths=self.lengths,
            images=self.images,
            image_mean=image.mean,
            image_std=image.std,
        )


def _missing(cell: Any) -> bool:
    if cell is None:
        return True
    return bool(np.ndim(cell) == 0 and pd.isna(cell))


def _read_stays(frame: pd.DataFrame, channels: int, image_size: int) -> _Stays:
    """Every row's arrays, checked; all problems raised at once as a ``StayInputError``."""
    if len(frame) == 0:
        raise StayInputError("the input has no rows (one row per stay)")
    if "timeseries" not in frame.columns:
        raise StayInputError(
            f"the input needs a 'timeseries' column (columns: {list(INPUT_COLUMNS)}); "
            f"got {list(frame.columns)}"
        )
    problems: list[str] = []
    series: list[np.ndarray] = []
    lengths: list[int] = []
    images: list[np.ndarray | None] = []
    length_column = frame["length"] if "length" in frame.columns else None
    image_column = frame["image"] if "image" in frame.columns else None
    for pos in range(len(frame)):
        where = f"row {pos} (index {frame.index[pos]!r})"
        values = _read_series(frame["timeseries"].iat[pos], channels, where, problems)
        length = len(values)
        if length_column is not None and not _missing(length_column.iat[pos]):
            length = int(length_column.iat[pos])
            if not 1 <= length <= len(values):
                problems.append(f"{where}: length {length} is outside [1, {len(values)}]")
                length = max(len(values), 1)
        series.append(values)
        lengths.append(length)
        cell = None if image_column is None else image_column.iat[pos]
        images.append(None if _missing(cell) else _read_image(cell, image_size, where, problems))
    if problems:
        shown = problems[:MAX_PROBLEMS]
        more = len(problems) - len(shown)
        raise StayInputError(
            "invalid stays: " + "; ".join(shown) + (f"; and {more} more" if more else "")
        )
    return _Stays(series, lengths, images)


def _read_series(cell: Any, channels: int, where: str, problems: list[str]) -> np.ndarray:
    placeholder = np.zeros((1, channels), dtype=np.float32)
    if _missing(cell):
        problems.append(f"{where}: no timeseries (every stay needs its EHR tensor)")
        return placeholder
    try:
        values = np.asarray(cell, dtype=np.float32)
    except (TypeError, ValueError):
        problems.append(f"{where}: timeseries is not a numeric (hours, {channels}) array")
        return placeholder
    if values.ndim != 2 or values.shape[0] < 1 or values.shape[1] != channels:
        problems.append(
            f"{where}: timeseries has shape {values.shape}; expected (hours >= 1, {channels}): "
            f"the model takes {channels} columns per hour, the width of the <task>.timeseries "
            "store it was trained on (ehr.categorical; its spec's ehr_input names them)"
        )
        return placeholder
    if not np.isfinite(values).all():
        problems.append(f"{where}: timeseries has NaN or inf (prepared tensors are filled)")
    return values


def _read_image(cell: Any, size: int, where: str, problems: list[str]) -> np.ndarray | None:
    try:
        pixels = np.asarray(cell)
        if pixels.ndim == 3 and pixels.shape[0] == 1:
            pixels = pixels[0]  # (1, S, S) -> (S, S)
        numeric = pixels.dtype.kind in "uif"
    except (TypeError, ValueError):
        numeric = False
    if not numeric:
        problems.append(f"{where}: image is not a numeric array")
        return None
    if pixels.shape != (size, size):
        problems.append(
            f"{where}: image has shape {pixels.shape}; the model takes ({size}, {size}) uint8 "
            "images as the cxr stage stores them"
        )
        return None
    if pixels.dtype != np.uint8:
        if (pixels < 0).any() or (pixels > 255).any() or (pixels != np.round(pixels)).any():
            problems.append(f"{where}: image values must be integers in [0, 255] (uint8 pixels)")
            return None
        pixels = pixels.astype(np.uint8)
    return pixels


def stays_from_stores(
    stays: pd.DataFrame, timeseries: ArrayStore, image_store: ArrayStore | None = None
) -> pd.DataFrame:
    """The input rows of ``stays`` (``stay_id``, optional ``dicom_id``, null = no image) read from
    the prepared stores: ``<task>.timeseries`` (each stay's first ``length`` hours) and
    ``cxr_image_store``. What the distill stage feeds the student, in the pyfunc's format."""
    rows = timeseries.rows(stays["stay_id"])
    length = timeseries.index.set_index("row")["length"].reindex(rows).to_numpy(dtype=np.int64)
    values = timeseries.arrays["values"]
    frame = pd.DataFrame(
        {
            "stay_id": stays["stay_id"].to_numpy(),
            "timeseries": [np.asarray(values[r, :n]) for r, n in zip(rows, length, strict=True)],
            "length": length,
        },
        index=stays.index,
    )
    dicom = stays["dicom_id"] if "dicom_id" in stays.columns else pd.Series(None, index=stays.index)
    images: list[np.ndarray | None] = [None] * len(stays)
    if image_store is not None and dicom.notna().any():
        paired = np.flatnonzero(dicom.notna().to_numpy())
        pixels = image_store.arrays["images"]
        for pos, row in zip(paired, image_store.rows(dicom.iloc[paired]), strict=True):
            images[pos] = np.asarray(pixels[row])
    frame["image"] = images
    return frame


# ------------------------------------------------------------------------------------- saving
def pip_requirements() -> list[str]:
    """The serving environment: the torch that trained the model, and tqdm (``mindkd.training``)."""
    return [f"torch=={torch.__version__.split('+')[0]}", "tqdm>=4.66"]


def signature(spec: Mapping[str, Any]) -> ModelSignature:
    """Input columns (``timeseries`` required; ``length``, ``image``, ``stay_id`` optional) and the
    output columns (``stay_id``, ``head``, one probability per label)."""
    labels = ServingSpec.model_validate(spec).labels
    inputs = Schema(
        [
            ColSpec(DataType.long, "stay_id", required=False),
            ColSpec(Array(Array(DataType.double)), "timeseries"),
            ColSpec(DataType.long, "length", required=False),
            ColSpec(Array(Array(DataType.long)), "image", required=False),
        ]
    )
    outputs = Schema(
        [
            ColSpec(DataType.long, "stay_id", required=False),
            ColSpec(DataType.string, "head"),
            *(ColSpec(DataType.double, label) for label in labels),
        ]
    )
    return ModelSignature(inputs=inputs, outputs=outputs)


def input_example(channels: int, hours: int = 2) -> pd.DataFrame:
    """One EHR-only stay of ``hours`` all-unobserved hours (zeros) of ``channels`` columns (the
    model's EHR width), the example stored with the model (an image would make it large; the
    signature documents the ``image`` column)."""
    return pd.DataFrame(
        {"stay_id": [0], "timeseries": [np.zeros((hours, channels)).tolist()], "length": [hours]}
    )


def model_arguments(model: StudentPyfunc, directory: Path) -> dict[str, Any]:
    """Keyword arguments of ``mlflow.pyfunc.save_model`` / ``log_model`` for ``model``: its weights
    and spec written to ``directory`` as artifacts, the signature, the code and the requirements.

    ``python_model`` is the code file ``model_code.py`` (MLflow's models from code: no pickle); the
    ``StudentPyfunc`` it declares serves what ``load_context`` rebuilds from the artifacts.
    """
    if model.model is None or model.card is None:
        raise ValueError("only a built StudentPyfunc(spec, weights) can be saved")
    directory.mkdir(parents=True, exist_ok=True)
    weights, spec = directory / "weights.pt", directory / "spec.json"
    torch.save({k: v.detach().cpu() for k, v in model.model.state_dict().items()}, weights)
    spec.write_text(json.dumps(model.card, indent=2))
    return {
        "python_model": str(MODEL_CODE),
        "artifacts": {WEIGHTS: str(weights), SPEC: str(spec)},
        "signature": signature(model.card),
        "input_example": input_example(model.ehr_channels),
        "code_paths": [str(Path(mindkd.__file__).parent)],
        "pip_requirements": pip_requirements(),
    }


def save_student(path: str | Path, model: StudentPyfunc) -> None:
    """Save ``model`` as a pyfunc model directory at ``path`` (MLflow copies the artifacts in)."""
    with tempfile.TemporaryDirectory() as scratch:
        mlflow.pyfunc.save_model(str(path), **model_arguments(model, Path(scratch)))
