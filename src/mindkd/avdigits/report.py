"""The AV-digits data report: what was read, skipped, split, paired and left out, as plain JSON.

Keys: ``source`` (folder, entries, recordings, every skipped file with its reason), ``speakers`` (per
split), ``recordings`` and ``images`` (per split, per split and digit), ``samples`` (paired /
audio-only / image-only per split and per digit: the class balance), ``missing`` (the shares asked
for and realised per split), ``image_reuse`` (per split: images available for pairing, pairs, images
used and unused, most uses of one image), ``features`` and ``image_store`` (shapes and settings).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from mindkd.avdigits.fsdd import skip_counts
from mindkd.avdigits.splits import SPLITS

KINDS: tuple[str, ...] = ("paired", "audio_only", "image_only")


def _counts(values: pd.Series) -> dict[str, int]:
    return {str(k): int(v) for k, v in values.value_counts().sort_index().items()}


def _by_split(table: pd.DataFrame) -> dict[str, int]:
    counts = table["split"].value_counts()
    return {s: int(counts.get(s, 0)) for s in SPLITS}


def _by_split_digit(table: pd.DataFrame) -> dict[str, dict[str, int]]:
    return {s: _counts(table.loc[table["split"] == s, "digit"]) for s in SPLITS}


def _samples(cohort: pd.DataFrame, pairs: pd.DataFrame, cxr_only: pd.DataFrame) -> pd.DataFrame:
    """One row per sample: ``split, digit, kind``."""
    recordings = cohort[["stay_id", "digit"]].merge(
        pairs[["stay_id", "dicom_id", "split"]], on="stay_id", how="left", validate="1:1"
    )
    kind = recordings["dicom_id"].notna().map({True: "paired", False: "audio_only"})
    audio = recordings.assign(kind=kind)[["split", "digit", "kind"]]
    images = cxr_only[["split", "digit"]].assign(kind="image_only")
    return pd.concat([audio, images], ignore_index=True)


def image_reuse(
    pairs: pd.DataFrame, images: pd.DataFrame, cxr_only: pd.DataFrame
) -> dict[str, dict[str, int]]:
    """Per split: images open to pairing, pairs made, images used / unused, most uses of one."""
    uses = pairs["dicom_id"].dropna().value_counts()
    pool = images.loc[~images["dicom_id"].isin(cxr_only["dicom_id"])]
    out: dict[str, dict[str, int]] = {}
    for split in SPLITS:
        counts = pool.loc[pool["split"] == split, "dicom_id"].map(uses).fillna(0).astype(int)
        out[split] = {
            "pool_images": len(counts),
            "pairs": int(counts.sum()),
            "images_used": int((counts > 0).sum()),
            "images_unused": int((counts == 0).sum()),
            "max_uses": int(counts.max()) if len(counts) else 0,
        }
    return out


def data_report(
    *,
    folder: str,
    recordings: pd.DataFrame,
    skipped: pd.DataFrame,
    cohort: pd.DataFrame,
    images: pd.DataFrame,
    pairs: pd.DataFrame,
    cxr_only: pd.DataFrame,
    timeseries_metadata: Mapping[str, Any],
    image_metadata: Mapping[str, Any],
    settings: Mapping[str, Any],
) -> dict[str, Any]:
    """The report (module doc); JSON-serialisable."""
    samples = _samples(cohort, pairs, cxr_only)
    per_split = {
        s: {k: int(((samples["split"] == s) & (samples["kind"] == k)).sum()) for k in KINDS}
        for s in SPLITS
    }
    balance = {
        s: {
            k: _counts(samples.loc[(samples["split"] == s) & (samples["kind"] == k), "digit"])
            for k in KINDS
        }
        for s in SPLITS
    }
    recordings_by_split = _by_split(cohort)
    images_by_split = _by_split(images)
    return {
        "source": {
            "recordings_dir": str(folder),
            "entries": len(recordings) + len(skipped),
            "recordings": len(recordings),
            "skipped": len(skipped),
            "skipped_by_reason": skip_counts(skipped) if len(skipped) else {},
            "skipped_files": skipped.to_dict("records"),
            "recordings_per_speaker": _counts(recordings["speaker"]),
        },
        "speakers": {
            s: sorted(cohort.loc[cohort["split"] == s, "speaker"].unique().tolist()) for s in SPLITS
        },
        "recordings": {"by_split": recordings_by_split, "by_split_digit": _by_split_digit(cohort)},
        "images": {
            "total": len(images),
            "by_split": images_by_split,
            "by_split_digit": _by_split_digit(images),
        },
        "samples": {"by_split": per_split, "by_split_digit": balance},
        "missing": {
            "missing_image": {
                "requested": float(settings.get("missing_image", float("nan"))),
                "realised": _share(per_split, "audio_only", recordings_by_split),
            },
            "missing_audio": {
                "requested": float(settings.get("missing_audio", float("nan"))),
                "realised": _share(per_split, "image_only", images_by_split),
            },
        },
        "image_reuse": image_reuse(pairs, images, cxr_only),
        "features": {
            k: timeseries_metadata.get(k)
            for k in ("frames", "frame_ms", "channels", "truncated", "frames_observed", "mel")
        },
        "image_store": {k: image_metadata.get(k) for k in ("image_size", "source", "resample")},
        "settings": dict(settings),
    }


def _share(
    per_split: Mapping[str, Mapping[str, int]], kind: str, totals: Mapping[str, int]
) -> dict[str, float]:
    return {s: (per_split[s][kind] / totals[s] if totals[s] else 0.0) for s in SPLITS}
