"""The 17 clinical variables of the mimic3-benchmarks line of work, mapped to MIMIC-IV item ids.

One row of ``VARIABLES`` per variable, in channel order. Each variable lists the chartevents and
labevents item ids it is read from, the unit rule of each item (see ``UnitRule``), and the plausible
ranges of ../shared/MIMIC.md: values outside ``[drop_low, drop_high]`` are errors in the record and are
dropped; values inside but outside ``[clip_low, clip_high]`` are clipped; ``normal`` imputes the hours
before the first observation. Those are the mimic3-benchmarks ranges; ``range_profile("mindkd")``,
the default, departs from them where the real MIMIC-IV demo showed values they keep that are no
measurements (``MINDKD_RANGE_CHANGES``). Each item-map decision that departs from MIMIC.md's table
(224689 and 224422 out of the respiratory rate, 227242 and 226329 in) is argued in docs/variables.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Literal

# How GCS and capillary refill enter the model input (``ehr.categorical``): one standardised column
# each, or one 0/1 column per category.
CategoricalEncoding = Literal["continuous", "one_hot"]


class UnitRule(StrEnum):
    """How a raw item's value becomes the variable's canonical unit."""

    NONE = "none"  # already in the canonical unit
    FAHRENHEIT_TO_CELSIUS = "f_to_c"  # (v - 32) * 5/9
    CELSIUS_OR_FAHRENHEIT = "c_or_f"  # a °C item; values in FAHRENHEIT_IN_CELSIUS are °F: converted
    POUNDS_TO_KG = "lb_to_kg"  # v * 0.453592
    INCHES_TO_CM = "in_to_cm"  # v * 2.54
    PERCENT_TO_FRACTION = "pct_to_frac"  # v / 100 when v > 1 (FiO2 charted in %)
    FRACTION_TO_PERCENT = "frac_to_pct"  # v * 100 when v <= 1 (SpO2 charted as a fraction)
    GCS_TEXT = "gcs_text"  # valuenum holds the score; text only as a fallback
    CAPILLARY_REFILL_TEXT = "cap_refill_text"  # "Normal <3 ..." -> 0, "Abnormal >3 ..." -> 1


#: Values of a °C item inside this range are °F charted under the wrong item (26.1 to 45 °C once
#: converted); below it they are read as °C, above it they are errors (dropped by the ranges).
FAHRENHEIT_IN_CELSIUS: tuple[float, float] = (79.0, 113.0)


@dataclass(frozen=True)
class Ranges:
    """Plausible values: outside ``[drop_low, drop_high]`` dropped, else clipped to the clip bounds."""

    drop_low: float
    clip_low: float
    clip_high: float
    drop_high: float


@dataclass(frozen=True)
class Variable:
    """One clinical variable: where it is charted, how to convert it and its plausible ranges."""

    name: str
    label: str
    chart_items: MappingProxyType[int, UnitRule]
    lab_items: MappingProxyType[int, UnitRule]
    drop_low: float
    clip_low: float
    normal: float
    clip_high: float
    drop_high: float
    derived: bool = False  # computed from other variables (GCS total), never read from an item
    unit: str = ""
    categorical: bool = field(default=False)
    slow: bool = False  # charted rarely, valid for long: a look-back before intime keeps it

    @property
    def item_ids(self) -> tuple[int, ...]:
        return (*self.chart_items, *self.lab_items)

    @property
    def ranges(self) -> Ranges:
        """The mimic3-benchmarks ranges of ../shared/MIMIC.md (profile ``mimic3_benchmarks``)."""
        return Ranges(self.drop_low, self.clip_low, self.clip_high, self.drop_high)

    @property
    def categories(self) -> tuple[float, ...]:
        """The scores a categorical variable takes (one-hot columns), in order; () otherwise."""
        if not self.categorical:
            return ()
        return tuple(float(v) for v in range(int(self.clip_low), int(self.clip_high) + 1))


def _items(
    mapping: dict[int, UnitRule] | None = None, *ids: int
) -> MappingProxyType[int, UnitRule]:
    rules = dict(mapping or {})
    rules.update(dict.fromkeys(ids, UnitRule.NONE))
    return MappingProxyType(rules)


_NO_ITEMS: MappingProxyType[int, UnitRule] = MappingProxyType({})

VARIABLES: tuple[Variable, ...] = (
    Variable(
        "capillary_refill",
        "Capillary refill rate",
        _items({223951: UnitRule.CAPILLARY_REFILL_TEXT, 224308: UnitRule.CAPILLARY_REFILL_TEXT}),
        _NO_ITEMS,
        0,
        0,
        0,
        1,
        1,
        categorical=True,
    ),
    Variable(
        "dbp",
        "Diastolic blood pressure",
        _items(None, 220051, 220180, 224643, 225310, 227242),
        _NO_ITEMS,
        0,
        0,
        59,
        375,
        375,
        unit="mmHg",
    ),
    Variable(
        "fio2",
        "Fraction inspired oxygen",
        _items({223835: UnitRule.PERCENT_TO_FRACTION}),
        _NO_ITEMS,
        0.2,
        0.21,
        0.21,
        1,
        1.1,
        unit="fraction",
    ),
    Variable(
        "gcs_eye",
        "Glascow coma scale eye opening",
        _items({220739: UnitRule.GCS_TEXT}),
        _NO_ITEMS,
        1,
        1,
        4,
        4,
        4,
        categorical=True,
    ),
    Variable(
        "gcs_motor",
        "Glascow coma scale motor response",
        _items({223901: UnitRule.GCS_TEXT}),
        _NO_ITEMS,
        1,
        1,
        6,
        6,
        6,
        categorical=True,
    ),
    Variable(
        "gcs_verbal",
        "Glascow coma scale verbal response",
        _items({223900: UnitRule.GCS_TEXT}),
        _NO_ITEMS,
        1,
        1,
        5,
        5,
        5,
        categorical=True,
    ),
    Variable(
        "gcs_total",
        "Glascow coma scale total",
        _NO_ITEMS,
        _NO_ITEMS,
        3,
        3,
        15,
        15,
        15,
        derived=True,
        categorical=True,
    ),
    Variable(
        "glucose",
        "Glucose",
        _items(None, 220621, 225664, 226537),
        _items(None, 50809, 50931),
        0,
        33,
        128,
        2000,
        2200,
        unit="mg/dL",
    ),
    Variable(
        "heart_rate", "Heart Rate", _items(None, 220045), _NO_ITEMS, 0, 0, 86, 350, 390, unit="bpm"
    ),
    Variable(
        "height",
        "Height",
        _items({226707: UnitRule.INCHES_TO_CM}, 226730),
        _NO_ITEMS,
        0,
        0,
        170,
        240,
        275,
        unit="cm",
        slow=True,
    ),
    Variable(
        "mbp",
        "Mean blood pressure",
        _items(None, 220052, 220181, 224322, 225312),
        _NO_ITEMS,
        0,
        14,
        77,
        330,
        375,
        unit="mmHg",
    ),
    Variable(
        "spo2",
        "Oxygen saturation",
        _items({220227: UnitRule.FRACTION_TO_PERCENT, 220277: UnitRule.FRACTION_TO_PERCENT}),
        _items({50817: UnitRule.FRACTION_TO_PERCENT}),
        0,
        0,
        98,
        100,
        150,
        unit="%",
    ),
    Variable(
        "resp_rate",
        "Respiratory rate",
        _items(None, 220210, 224690),  # total rates only (docs/variables.md)
        _NO_ITEMS,
        0,
        0,
        19,
        300,
        330,
        unit="breaths/min",
    ),
    Variable(
        "sbp",
        "Systolic blood pressure",
        _items(None, 220050, 220179, 224167, 225309, 227243),
        _NO_ITEMS,
        0,
        0,
        118,
        375,
        375,
        unit="mmHg",
    ),
    Variable(
        "temperature",
        "Temperature",
        _items(
            {223761: UnitRule.FAHRENHEIT_TO_CELSIUS, 223762: UnitRule.CELSIUS_OR_FAHRENHEIT}, 226329
        ),
        _NO_ITEMS,
        14.2,
        26,
        37,
        45,
        47,
        unit="°C",
    ),
    Variable(
        "weight",
        "Weight",
        _items({226531: UnitRule.POUNDS_TO_KG}, 224639, 226512),
        _NO_ITEMS,
        0,
        0,
        81.8,
        250,
        250,
        unit="kg",
        slow=True,
    ),
    Variable("ph", "pH", _items(None, 220274, 223830), _items(None, 50820), 6.3, 6.3, 7.4, 8.4, 10),
)

VARIABLE_NAMES: tuple[str, ...] = tuple(v.name for v in VARIABLES)
NUM_VARIABLES = len(VARIABLES)
CHANNEL: MappingProxyType[str, int] = MappingProxyType({n: i for i, n in enumerate(VARIABLE_NAMES)})

#: Names of the variables a look-back before intime may fill (``Variable.slow``).
SLOW_VARIABLES: tuple[str, ...] = tuple(v.name for v in VARIABLES if v.slow)

RangeProfile = Literal["mindkd", "mimic3_benchmarks"]
DEFAULT_RANGE_PROFILE: RangeProfile = "mindkd"

#: Where the ``mindkd`` ranges depart from mimic3-benchmarks', and the evidence (docs/variables.md;
#: measured on the real MIMIC-IV demo 2.2). Every other variable keeps the mimic3-benchmarks ranges.
MINDKD_RANGE_CHANGES: Mapping[str, tuple[Ranges, str]] = MappingProxyType(
    {
        "resp_rate": (
            Ranges(1, 1, 300, 330),
            "0 is no total respiratory rate: 41 of the 47 zeros of item 220210 lie hours or days "
            "from any death, between non-zero values",
        ),
        "mbp": (
            Ranges(0, 14, 200, 200),
            "every mean above 200 mmHg is an arterial-line artefact: the highest systolic "
            "pressure of the demo is 215, co-charted systolics at those times are at most 124",
        ),
        "weight": (
            Ranges(20, 20, 250, 250),
            "no adult weighs under 20 kg; the demo's only such value is a 0 re-charted as "
            "198 lbs five minutes later",
        ),
        "height": (
            Ranges(100, 100, 240, 275),
            "0 cm is no measurement; the demo's two adult heights under 100 cm (61 and 70 cm) "
            "give a BMI over 100 with their weights",
        ),
    }
)


def range_profile(profile: str) -> tuple[Ranges, ...]:
    """The ranges of every variable, in channel order, under ``profile`` (``ehr.ranges``).

    ``mimic3_benchmarks``: the table of ../shared/MIMIC.md, as published work uses it;
    ``mindkd`` (default): the same with ``MINDKD_RANGE_CHANGES``.
    """
    if profile == "mimic3_benchmarks":
        return tuple(v.ranges for v in VARIABLES)
    if profile == "mindkd":
        return tuple(MINDKD_RANGE_CHANGES.get(v.name, (v.ranges, ""))[0] for v in VARIABLES)
    raise ValueError(
        f"unknown range profile {profile!r} (parameter `ehr.ranges`); "
        "choose 'mindkd' or 'mimic3_benchmarks'"
    )


#: chartevents item id -> (channel index, unit rule)
CHART_ITEMS: MappingProxyType[int, tuple[int, UnitRule]] = MappingProxyType(
    {item: (i, rule) for i, v in enumerate(VARIABLES) for item, rule in v.chart_items.items()}
)
#: labevents item id -> (channel index, unit rule)
LAB_ITEMS: MappingProxyType[int, tuple[int, UnitRule]] = MappingProxyType(
    {item: (i, rule) for i, v in enumerate(VARIABLES) for item, rule in v.lab_items.items()}
)

#: GCS text answers of MIMIC-IV, for rows whose valuenum is empty. "None" (eye) scores 1 and must be
#: read as a string: pandas turns it into NaN unless ``keep_default_na=False``.
GCS_TEXT_SCORES: MappingProxyType[str, float] = MappingProxyType(
    {
        # eye opening
        "spontaneously": 4,
        "to speech": 3,
        "to pain": 2,
        "none": 1,
        # motor response
        "obeys commands": 6,
        "localizes pain": 5,
        "flex-withdraws": 4,
        "abnormal flexion": 3,
        "abnormal extension": 2,
        "no response": 1,
        # verbal response
        "oriented": 5,
        "confused": 4,
        "inappropriate words": 3,
        "incomprehensible sounds": 2,
        "no response-ett": 1,
    }
)

GCS_COMPONENTS: tuple[str, str, str] = ("gcs_eye", "gcs_motor", "gcs_verbal")
