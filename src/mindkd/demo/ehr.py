"""The EHR side of the signal: latent-driven trajectories of the 17 variables, charting schedules.

Every ICU stay's EHR latent ``z_e`` shifts its vital signs from the first hour on; the shift grows
over the first 48 h and keeps growing slowly after (``growth``). Component 0 (haemodynamic) raises
heart rate, temperature and abnormal capillary refill and lowers blood pressure; 1 (respiratory)
raises respiratory rate and FiO2 and lowers SpO2; 2 (metabolic) raises glucose and lowers pH;
3 (neuro) lowers the GCS. Each stay also has its own offset per variable, a daily rhythm and
per-measurement noise, so the signal is learnable from a 48 h summary but far from trivial.

``chartevents.py`` and ``labevents.py`` turn these values into rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mindkd.demo import vocab
from mindkd.demo._util import HOUR, ceil_minute, float_array, segment_arange, text_array
from mindkd.demo.cohort import Cohort

#: Lab text values (urine dipstick, de-identified or failed results).
LAB_TEXT: tuple[str, ...] = ("NEG", "TR", "___", "ERROR", "UNABLE TO REPORT", "HEMOLYZED")

#: Every text written to an event ``value`` column; rows hold an index into it (-1 = a number).
TEXT_VOCAB: tuple[str, ...] = tuple(
    dict.fromkeys(
        (
            *vocab.GCS_EYE_TEXT.values(),
            *vocab.GCS_MOTOR_TEXT.values(),
            *vocab.GCS_VERBAL_TEXT.values(),
            vocab.GCS_VERBAL_ETT,
            *vocab.CAP_REFILL_TEXT,
            *vocab.NUMERIC_FIELD_TEXT,
            *(c for d in vocab.DISTRACTOR_ITEMS for c in d.choices),
            *LAB_TEXT,
        )
    )
)
CODE: dict[str, int] = {text: i for i, text in enumerate(TEXT_VOCAB)}


@dataclass(frozen=True)
class Trajectory:
    """A variable: ``normal + scale * (z_e · loadings * growth + noise terms)``, clipped."""

    slot: int
    normal: float
    scale: float
    loadings: tuple[float, float, float, float]
    low: float
    high: float


TRAJECTORIES: dict[str, Trajectory] = {
    "heart_rate": Trajectory(0, 86, 13, (0.9, 0.3, 0.1, 0), 35, 200),
    "sbp": Trajectory(1, 121, 16, (-0.8, 0, -0.1, 0), 60, 220),
    "dbp": Trajectory(2, 63, 9, (-0.6, 0, 0, 0), 25, 130),
    "resp_rate": Trajectory(3, 19, 4.5, (0.2, 0.85, 0.1, 0), 6, 50),
    "spo2": Trajectory(4, 97, 1.6, (-0.1, -0.8, 0, 0), 72, 100),
    "fio2": Trajectory(5, 42, 12, (0.2, 0.8, 0, 0), 21, 100),
    "glucose": Trajectory(6, 132, 34, (0.2, 0, 0.75, 0), 45, 600),
    "ph": Trajectory(7, 7.38, 0.055, (-0.35, -0.1, -0.7, 0), 6.85, 7.65),
    "temperature": Trajectory(8, 37.0, 0.55, (0.6, 0.3, 0, 0), 34.5, 41.0),
    "gcs": Trajectory(9, 0, 1, (0.3, 0, 0, 0.9), -10, 10),
    "cap_refill": Trajectory(10, 0, 1, (0.9, 0, 0.2, 0), -10, 10),
}
N_SLOTS = len(TRAJECTORIES)
OFFSET_SD, RHYTHM_SD, NOISE_SD = 0.6, 0.25, 0.6


def growth(hours: np.ndarray) -> np.ndarray:
    """How strongly the latent shows ``hours`` after intime: rising to 48 h, then slowly."""
    return 0.7 + 0.5 * np.minimum(hours, 48) / 48 + 0.3 * np.clip((hours - 48) / 120, 0, 1)


@dataclass(frozen=True)
class LatentState:
    """Per-row latent inputs of the trajectories: z_e (n, 4), offsets (n, slots), phase (n,)."""

    z_e: np.ndarray
    offset: np.ndarray
    phase: np.ndarray

    def take(self, rows: np.ndarray) -> LatentState:
        return LatentState(self.z_e[rows], self.offset[rows], self.phase[rows])

    @classmethod
    def calm(cls, z_e: np.ndarray) -> LatentState:
        """Outside the ICU: half the latent shift, no stay offset, no rhythm."""
        n = len(z_e)
        return cls(0.5 * z_e, np.zeros((n, N_SLOTS)), np.zeros(n))


def latent_value(
    name: str, state: LatentState, hours: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Standardised value of a variable (unclipped), one per row of ``state``."""
    spec = TRAJECTORIES[name]
    effect = state.z_e @ np.asarray(spec.loadings) * growth(hours)
    rhythm = RHYTHM_SD * np.sin(2 * np.pi * hours / 24 + state.phase)
    noise = NOISE_SD * rng.standard_normal(len(hours))
    return effect + OFFSET_SD * state.offset[:, spec.slot] + rhythm + noise


def physical_value(
    name: str, state: LatentState, hours: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """A numeric variable in its unit, clipped to its natural range."""
    spec = TRAJECTORIES[name]
    x = latent_value(name, state, hours, rng)
    return np.clip(spec.normal + spec.scale * x, spec.low, spec.high)


@dataclass
class StayContext:
    """Per-stay arrays of one block (index = row of ``cohort.stays``)."""

    subject: np.ndarray
    hadm: np.ndarray
    stay: np.ndarray
    intime: np.ndarray
    outtime: np.ndarray
    los_h: np.ndarray
    state: LatentState
    ventilated: np.ndarray
    art_line: np.ndarray

    @classmethod
    def from_cohort(cls, cohort: Cohort, rng: np.random.Generator) -> StayContext:
        st = cohort.stays
        z_e = cohort.z_e[st["admission_row"].to_numpy()]
        n = len(st)
        intime, outtime = st["intime"].to_numpy(), st["outtime"].to_numpy()
        vent = rng.random(n) < 1 / (1 + np.exp(-(-0.3 + 0.9 * z_e[:, 1] + 0.5 * z_e[:, 3])))
        art = rng.random(n) < 1 / (1 + np.exp(-(-0.4 + 0.8 * z_e[:, 0])))
        state = LatentState(z_e, rng.standard_normal((n, N_SLOTS)), rng.uniform(0, 2 * np.pi, n))
        return cls(
            subject=st["subject_id"].to_numpy(),
            hadm=st["hadm_id"].to_numpy(),
            stay=st["stay_id"].to_numpy(),
            intime=intime,
            outtime=outtime,
            los_h=(outtime - intime) / HOUR,
            state=state,
            ventilated=vent,
            art_line=art,
        )

    def __len__(self) -> int:
        return len(self.stay)

    def value(
        self, name: str, s: np.ndarray, hours: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """``physical_value`` for stay rows ``s`` at ``hours`` after intime."""
        return physical_value(name, self.state.take(s), hours, rng)


@dataclass
class Slots:
    """Charting times: stay row, charttime (epoch seconds), hours since intime."""

    s: np.ndarray
    t: np.ndarray
    h: np.ndarray


def schedule(
    ctx: StayContext,
    every_h: int,
    rng: np.random.Generator,
    stays: np.ndarray | None = None,
    presence: float = 1.0,
) -> Slots:
    """Charting slots every ``every_h`` hours in the selected stays (``stays`` mask).

    Each slot is charted with probability ``presence``, a few minutes after the hour, to the
    minute, and never after outtime.
    """
    n = len(ctx)
    mask = np.ones(n, bool) if stays is None else stays
    phase = rng.integers(0, every_h, n) if every_h > 1 else np.zeros(n, np.int64)
    count = np.where(mask, np.ceil((ctx.los_h - phase) / every_h), 0).clip(0).astype(np.int64)
    s = np.repeat(np.arange(n), count)
    slot = phase[s] + segment_arange(count) * every_h
    keep = rng.random(len(s)) < presence
    s, slot = s[keep], slot[keep]
    t = ceil_minute(ctx.intime[s] + slot * HOUR + rng.integers(0, 55 * 60, len(s)))
    inside = t <= ctx.outtime[s]
    s, t = s[inside], t[inside]
    return Slots(s, t, (t - ctx.intime[s]) / HOUR)


def once(ctx: StayContext, rng: np.random.Generator, presence: float) -> Slots:
    """One charting time in the first 4 h of each stay, with probability ``presence``."""
    s = np.flatnonzero(rng.random(len(ctx)) < presence)
    t = ceil_minute(ctx.intime[s] + rng.uniform(0, np.minimum(4, ctx.los_h[s] - 0.1)) * HOUR)
    t = np.minimum(t, ctx.outtime[s] - ctx.outtime[s] % 60)
    return Slots(s, t, (t - ctx.intime[s]) / HOUR)


@dataclass
class Events:
    """Event rows being built: stay row, time, item id, number (NaN: none), text code (-1)."""

    s: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    t: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    item: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    num: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))
    code: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))

    @classmethod
    def of(
        cls,
        slots: Slots,
        itemid: int | np.ndarray,
        valuenum: np.ndarray | None = None,
        text: np.ndarray | None = None,
    ) -> Events:
        n = len(slots.s)
        return cls(
            np.asarray(slots.s, np.int64),
            np.asarray(slots.t, np.int64),
            np.broadcast_to(np.asarray(itemid, np.int64), (n,)).copy(),
            np.full(n, np.nan) if valuenum is None else np.asarray(valuenum, np.float64),
            np.full(n, -1, np.int32) if text is None else np.asarray(text, np.int32),
        )

    def __len__(self) -> int:
        return len(self.s)

    def take(self, rows: np.ndarray) -> Events:
        return Events(self.s[rows], self.t[rows], self.item[rows], self.num[rows], self.code[rows])

    @staticmethod
    def concat(parts: list[Events]) -> Events:
        if not parts:
            return Events()
        return Events(
            *(
                np.concatenate([getattr(p, k) for p in parts])
                for k in ("s", "t", "item", "num", "code")
            )
        )


@cache
def _text_array() -> pa.Array:
    return pa.array(TEXT_VOCAB)


def value_strings(num: np.ndarray, code: np.ndarray) -> pa.Array:
    """The ``value`` column: the text where there is one, else the number as charted."""
    numbers = pc.cast(float_array(num), pa.string())
    texts = text_array(_text_array(), code)
    return pc.if_else(pa.array(code >= 0), texts, numbers)
