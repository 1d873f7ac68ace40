"""Nodes of the ``avdigits`` pipeline: thin steps over ``mindkd.avdigits``."""

from __future__ import annotations

from typing import Any

import pandas as pd

from mindkd.avdigits import features, fsdd, images, pairing, report, splits, tables
from mindkd.io.array_store import ArrayStore
from mindkd.processing.normalise import Normaliser

from .params import AvDigitsSource


def index_recordings(source: AvDigitsSource) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every usable FSDD recording (8 kHz mono 16-bit PCM, a parsable name) and every entry of the
    folder skipped, with its reason."""
    return fsdd.index_recordings(source.recordings_dir)


def assign_speaker_splits(recordings: pd.DataFrame, source: AvDigitsSource) -> pd.DataFrame:
    """The cohort: one row per recording with its speaker's split and one-hot digit."""
    split = splits.assign_speaker_splits(recordings, source.speakers.val, source.speakers.test)
    return tables.build_cohort(recordings, split)


def extract_log_mel(recordings: pd.DataFrame, source: AvDigitsSource) -> ArrayStore:
    """Log-mel spectrograms of every recording (unnormalised), values then masks, by stay_id."""
    waves = fsdd.read_waveforms(source.recordings_dir, recordings["file"].tolist())
    return features.build_log_mel_store(recordings["stay_id"], waves, source.features)


def select_train_stays(cohort: pd.DataFrame) -> pd.DataFrame:
    """The training recordings' stay_ids: all the normaliser may see."""
    return cohort.loc[cohort["split"] == "train", ["stay_id"]].reset_index(drop=True)


def fit_mel_normaliser(
    timeseries_raw: ArrayStore, train_stays: pd.DataFrame, source: AvDigitsSource
) -> dict[str, Any]:
    """Per-mel mean and std of the observed frames of the training recordings."""
    fitted = features.fit_mel_normaliser(
        timeseries_raw, train_stays["stay_id"], min_std=source.min_std
    )
    return fitted.to_dict()


def apply_mel_normaliser(timeseries_raw: ArrayStore, normaliser: dict[str, Any]) -> ArrayStore:
    """The model input of every recording: standardised log-mel then masks."""
    return features.apply_mel_normaliser(timeseries_raw, Normaliser.from_dict(normaliser))


def load_digit_images(source: AvDigitsSource) -> ArrayStore:
    """scikit-learn's handwritten digits as a uint8 image store keyed ``digit-0000`` ..."""
    pixels, digits = images.load_digit_images(source.image_size)
    return images.build_image_store(pixels, digits)


def split_digit_images(image_store: ArrayStore, source: AvDigitsSource) -> pd.DataFrame:
    """Each image's split: disjoint by image, stratified by digit, seeded."""
    index = image_store.index
    split = splits.assign_image_splits(
        index["dicom_id"], index["digit"], source.image_shares.model_dump(), source.seed
    )
    return tables.build_images(index["dicom_id"], index["digit"], split)


def pair_samples(
    cohort: pd.DataFrame, digit_images: pd.DataFrame, source: AvDigitsSource
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Pairs (a same-digit, same-split image per recording, or none) and the image-only samples."""
    paired = pairing.pair_samples(
        cohort,
        digit_images,
        missing_image=source.missing_image,
        missing_audio=source.missing_audio,
        seed=source.seed,
    )
    return paired.pairs, paired.cxr_only


def describe_subgroups(cohort: pd.DataFrame) -> pd.DataFrame:
    """Speaker, accent, sex and duration band of every recording."""
    return tables.stay_subgroups(cohort)


def list_subject_splits(cohort: pd.DataFrame, cxr_only: pd.DataFrame) -> pd.DataFrame:
    """The split of every subject: each recording and each image-only sample."""
    return tables.subject_splits(cohort, cxr_only)


def report_avdigits(
    recordings: pd.DataFrame,
    skipped: pd.DataFrame,
    cohort: pd.DataFrame,
    digit_images: pd.DataFrame,
    pairs: pd.DataFrame,
    cxr_only: pd.DataFrame,
    timeseries: ArrayStore,
    image_store: ArrayStore,
    source: AvDigitsSource,
) -> dict[str, Any]:
    """Files read and skipped, speakers and counts per split and digit, missing shares realised."""
    return report.data_report(
        folder=source.recordings_dir,
        recordings=recordings,
        skipped=skipped,
        cohort=cohort,
        images=digit_images,
        pairs=pairs,
        cxr_only=cxr_only,
        timeseries_metadata=timeseries.metadata,
        image_metadata=image_store.metadata,
        settings=source.model_dump(mode="json"),
    )
