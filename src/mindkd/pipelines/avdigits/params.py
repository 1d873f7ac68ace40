"""Typed parameters of the ``avdigits`` pipeline (``parameters_avdigits.yml``, key ``avdigits.source``).

The ``avdigits`` block holds the source adapter's settings under ``source`` beside the task-level
blocks (``task``, ``teachers``, ``distill``) of the teachers and distill stages it runs; the
session-wide parameter check knows the whole block as ``mindkd.pipelines.params.AvDigitsTaskBlock``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mindkd.avdigits.features import MelSpec


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SpeakerSplit(_Params):
    """The held-out speakers (every other speaker found is train).

    Default: test ``theo``, val ``yweweler``: each shares an accent group with a training speaker
    (USA: jackson; DEU: lucas), so val and test measure an unseen voice, not an unseen accent, and the
    two singleton accents (GRC george, BEL nicolas) stay in train. 4 / 1 / 1 speakers = 2000 / 500 /
    500 recordings, 50 per digit in val and test.
    """

    val: tuple[str, ...] = Field(("yweweler",), min_length=1)
    test: tuple[str, ...] = Field(("theo",), min_length=1)

    @model_validator(mode="after")
    def _disjoint(self) -> SpeakerSplit:
        both = sorted(set(self.val) & set(self.test))
        if both:
            raise ValueError(f"speaker(s) {both} named for both val and test")
        return self


class ImageShares(_Params):
    """Relative shares of the images per split (normalised to sum to 1).

    Default 4 : 1 : 1, the speakers' ratio, so every split pairs its recordings with about the same
    number of uses per image.
    """

    train: float = Field(4.0, gt=0)
    val: float = Field(1.0, gt=0)
    test: float = Field(1.0, gt=0)


class AvDigitsSource(_Params):
    """Where the recordings are, how both modalities are prepared, split, paired and left out."""

    recordings_dir: str = Field(
        description="FSDD's recordings/ folder (3,000 WAVs); conf/base reads the globals key "
        "`fsdd_recordings_dir`, default data/01_raw/fsdd/recordings",
    )
    seed: int = Field(42, description="image splits, missing modalities and pairing")
    speakers: SpeakerSplit = SpeakerSplit()
    features: MelSpec = MelSpec()
    min_std: float = Field(1e-6, gt=0, description="a mel std below this becomes 1 (centred only)")
    image_size: int = Field(32, ge=8, le=512, description="side of the stored images (from 8x8)")
    image_shares: ImageShares = ImageShares()
    missing_image: float = Field(
        0.3, ge=0.0, lt=1.0, description="share of each split's recordings served audio-only"
    )
    missing_audio: float = Field(
        0.3, ge=0.0, lt=1.0, description="share of each split's images served image-only"
    )
