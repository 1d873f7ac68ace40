"""Simple per-stay features computed from the raw demo files, for the signal tests.

Deliberately independent of ``mindkd.demo``: item ids and unit rules are re-typed here from
../shared/MIMIC.md, so the tests check the files, not the generator's own bookkeeping.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

CHART_ITEMS: dict[int, str] = {
    **dict.fromkeys((223951, 224308), "cap_refill"),
    **dict.fromkeys((220051, 220180, 224643, 225310), "dbp"),
    223835: "fio2",
    220739: "gcs_eye",
    223901: "gcs_motor",
    223900: "gcs_verbal",
    **dict.fromkeys((220621, 225664, 226537), "glucose"),
    220045: "heart_rate",
    **dict.fromkeys((226730, 226707), "height"),
    **dict.fromkeys((220052, 220181, 224322, 225312), "mbp"),
    **dict.fromkeys((220227, 220277), "spo2"),
    **dict.fromkeys((220210, 224422, 224689, 224690), "resp_rate"),
    **dict.fromkeys((220050, 220179, 224167, 225309, 227243), "sbp"),
    **dict.fromkeys((223762, 223761), "temperature"),
    **dict.fromkeys((224639, 226512, 226531), "weight"),
    **dict.fromkeys((220274, 223830), "ph"),
}
RANGES: dict[str, tuple[float, float]] = {
    "cap_refill": (0, 1),
    "dbp": (0, 375),
    "fio2": (0.2, 1.1),
    "gcs_eye": (1, 4),
    "gcs_motor": (1, 6),
    "gcs_verbal": (1, 5),
    "glucose": (0, 2200),
    "heart_rate": (0, 390),
    "height": (0, 275),
    "mbp": (0, 375),
    "spo2": (0, 150),
    "resp_rate": (0, 330),
    "sbp": (0, 375),
    "temperature": (14.2, 47),
    "weight": (0, 250),
    "ph": (6.3, 10),
}
VARIABLES = tuple(RANGES)


def read_events(path: Path) -> pd.DataFrame:
    """chartevents rows of the 17 variables with a stay_id, values in canonical units."""
    columns = ["subject_id", "stay_id", "charttime", "itemid", "value", "valuenum"]
    table = pacsv.read_csv(
        path,
        convert_options=pacsv.ConvertOptions(
            include_columns=columns,
            column_types={
                "stay_id": pa.int64(),
                "itemid": pa.int64(),
                "value": pa.string(),
                "valuenum": pa.float64(),
                "charttime": pa.timestamp("s"),
            },
            strings_can_be_null=False,
        ),
    )
    table = table.filter(pc.is_in(table["itemid"], pa.array(list(CHART_ITEMS))))
    df = table.to_pandas()
    df = df[df["stay_id"].notna() & df["subject_id"].notna()]
    item = df["itemid"].to_numpy()
    v = df["valuenum"].to_numpy(dtype=float).copy()
    v = np.where(item == 223761, (v - 32) * 5 / 9, v)
    v = np.where(item == 226531, v * 0.453592, v)
    v = np.where(item == 226707, v * 2.54, v)
    v = np.where((item == 223835) & (v > 1), v / 100, v)
    v = np.where(np.isin(item, (220227, 220277)) & (v <= 1), v * 100, v)
    cap = np.isin(item, (223951, 224308))
    text = df["value"].astype(str)
    v = np.where(cap & text.str.startswith("Normal"), 0.0, v)
    v = np.where(cap & text.str.startswith("Abnormal"), 1.0, v)
    out = pd.DataFrame(
        {
            "stay_id": df["stay_id"].astype("int64").to_numpy(),
            "charttime": df["charttime"].to_numpy(),
            "variable": pd.Series(item).map(CHART_ITEMS).to_numpy(),
            "value": v,
        }
    )
    low = out["variable"].map(lambda k: RANGES[k][0])
    high = out["variable"].map(lambda k: RANGES[k][1])
    return out[out["value"].between(low, high)]


def ehr_summaries(events: pd.DataFrame, stays: pd.DataFrame, hours: float = 48) -> pd.DataFrame:
    """Mean of each variable over [intime, intime + hours) per stay (NaN where never charted)."""
    ev = events.merge(stays[["stay_id", "intime"]], on="stay_id")
    dt = (ev["charttime"] - ev["intime"]).dt.total_seconds() / 3600
    ev = ev[(dt >= 0) & (dt < hours)]
    wide = ev.pivot_table(index="stay_id", columns="variable", values="value", aggfunc="mean")
    return wide.reindex(index=stays["stay_id"], columns=list(VARIABLES))


def image_pixels(
    root: Path, metadata: pd.DataFrame, size: int = 16
) -> tuple[np.ndarray, np.ndarray]:
    """Images as ``size x size`` mean-pooled pixels in [0, 1], shape (n, size**2).

    Returns the pixels and a mask of the rows whose file exists and decodes.
    """
    out = np.zeros((len(metadata), size * size), dtype=np.float32)
    ok = np.zeros(len(metadata), dtype=bool)
    for i, row in enumerate(metadata.itertuples(index=False)):
        subject = str(row.subject_id)
        path = root / f"files/p{subject[:2]}/p{subject}/s{row.study_id}/{row.dicom_id}.jpg"
        try:
            with Image.open(path) as image:
                small = image.convert("L").resize((size, size), Image.Resampling.BOX)
        except OSError:  # missing, empty or truncated file
            continue
        out[i] = np.asarray(small, dtype=np.float32).ravel() / 255
        ok[i] = True
    return out, ok


def cross_fit_auroc(
    x: np.ndarray, y: np.ndarray, repeats: int = 5, c: float = 1.0, seed: int = 0
) -> float:
    """Mean AUROC over ``repeats`` random halvings; each half is scored by a model fit on the other.

    Missing values are imputed with the column median of the training half.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=bool)
    aurocs = []
    for r in range(repeats):
        scores = np.zeros(len(y))
        folds = StratifiedKFold(n_splits=2, shuffle=True, random_state=seed + r)
        for train, test in folds.split(x, y):
            median = np.nan_to_num(np.nanmedian(x[train], axis=0))
            xtr = np.where(np.isnan(x[train]), median, x[train])
            xte = np.where(np.isnan(x[test]), median, x[test])
            model = make_pipeline(StandardScaler(), LogisticRegression(C=c, solver="liblinear"))
            model.fit(xtr, y[train])
            scores[test] = model.predict_proba(xte)[:, 1]
        aurocs.append(roc_auc_score(y, scores))
    return float(np.mean(aurocs))
