"""The Free Spoken Digit Dataset (FSDD): index a folder of recordings and read their waveforms.

FSDD (https://github.com/Jakobovski/free-spoken-digit-dataset, CC BY-SA 4.0) holds English digits
spoken by 6 speakers, one WAV file per take, named ``{digit}_{speaker}_{index}.wav`` and recorded as
8 kHz mono 16-bit PCM. ``index_recordings`` looks at every entry of the folder once:

- a name that does not parse, a file that cannot be read, or one that is not 8 kHz mono 16-bit PCM
  with at least one sample is skipped and listed with its reason (``skipped``), never dropped
  silently;
- every other file becomes one row of ``recordings`` (``RECORDING_COLUMNS``), keyed by a stable
  ``stay_id`` that depends on the (digit, speaker, take) of the file alone (``recording_id``), so
  adding, removing or reordering files never renumbers the others.

>>> parse_name("7_jackson_32.wav")
(7, 'jackson', 32)
>>> parse_name("7_jackson.wav") is None
True
>>> recording_id(0, "george", 0)
200043808505301

The headers are checked by memory-mapping each file (``scipy.io.wavfile.read(mmap=True)``): the
index costs no more than the file listing. ``read_waveforms`` reads the samples of the indexed files.
"""

from __future__ import annotations

import hashlib
import logging
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.io import wavfile

logger = logging.getLogger(__name__)

SAMPLE_RATE = 8000
SAMPLE_DTYPE = np.dtype(np.int16)
SOURCE_URL = "https://github.com/Jakobovski/free-spoken-digit-dataset"
#: Where the folder is set: the parameter, and the globals key its default reads.
RECORDINGS_PARAMETER = "avdigits.source.recordings_dir"
RECORDINGS_GLOBAL = "fsdd_recordings_dir"
DEFAULT_RECORDINGS_DIR = "data/01_raw/fsdd/recordings"

NAME_PATTERN = re.compile(
    r"(?P<digit>[0-9])_(?P<speaker>[A-Za-z][A-Za-z0-9]*)_(?P<take>[0-9]+)\.wav"
)
#: The columns of ``recordings`` and their dtypes, in order.
RECORDING_COLUMNS: dict[str, str] = {
    "stay_id": "int64",
    "file": "str",
    "digit": "int64",
    "speaker": "str",
    "take": "int64",
    "samples": "int64",
    "duration_s": "float64",
}
SKIPPED_COLUMNS: tuple[str, ...] = ("file", "reason")
_ID_BYTES = 6  # 48-bit ids: positive int64, exact as float64 too


@dataclass(frozen=True)
class Speaker:
    """What FSDD's ``metadata.py`` says of a speaker (all speak English)."""

    gender: str
    accent: str


#: The speakers of FSDD v1.0.10 (the README's table); a speaker not listed is ``Unknown``.
SPEAKERS: dict[str, Speaker] = {
    "george": Speaker("male", "GRC/Greek"),
    "jackson": Speaker("male", "USA/neutral"),
    "lucas": Speaker("male", "DEU/German"),
    "nicolas": Speaker("male", "BEL/French"),
    "theo": Speaker("male", "USA/neutral"),
    "yweweler": Speaker("male", "DEU/German"),
}


class FsddError(ValueError):
    """The recordings folder holds nothing usable."""


class MissingRecordingsError(FileNotFoundError):
    """The recordings folder does not exist; the message says which key sets it and where to get it."""


def missing_folder_message(folder: str | Path) -> str:
    """What to do when ``folder`` is absent: the key that sets it and where the data comes from."""
    return (
        f"The FSDD recordings folder {str(folder)!r} does not exist or is not a folder. It is set "
        f"by the parameter `{RECORDINGS_PARAMETER}` (default `${{globals:{RECORDINGS_GLOBAL}}}`, "
        f"else {DEFAULT_RECORDINGS_DIR}). Get the data with `git clone {SOURCE_URL}` and point "
        f"`{RECORDINGS_GLOBAL}` in conf/local/globals.yml (or `--params "
        f"{RECORDINGS_PARAMETER}=...`) at the clone's `recordings/` folder."
    )


def parse_name(name: str) -> tuple[int, str, int] | None:
    """``(digit, speaker, take)`` of an FSDD file name, or None when it does not have that form."""
    match = NAME_PATTERN.fullmatch(name)
    if match is None:
        return None
    return int(match["digit"]), match["speaker"], int(match["take"])


def recording_id(digit: int, speaker: str, take: int) -> int:
    """A stable 48-bit id of one recording, from its (digit, speaker, take) alone (BLAKE2b)."""
    digest = hashlib.blake2b(f"fsdd/{digit}_{speaker}_{take}".encode(), digest_size=_ID_BYTES)
    return int.from_bytes(digest.digest(), "big")


def _check_file(path: Path) -> tuple[int, str | None]:
    """(number of samples, None) for a usable recording, else (0, the reason it is skipped)."""
    if not path.is_file():
        return 0, "not a file"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", wavfile.WavFileWarning)  # unknown chunks are fine
            rate, data = wavfile.read(path, mmap=True)
    except (ValueError, OSError, EOFError, IndexError) as exc:
        return 0, f"unreadable WAV: {exc}"
    problems = []
    if rate != SAMPLE_RATE:
        problems.append(f"sample rate {rate} Hz (need {SAMPLE_RATE})")
    if data.ndim != 1:
        problems.append(f"{data.shape[1]} channels (need mono)")
    if data.dtype != SAMPLE_DTYPE:
        problems.append(f"sample format {data.dtype} (need 16-bit PCM, int16)")
    samples = int(data.shape[0])
    del data  # closes the memory map
    if samples == 0:
        problems.append("no samples")
    return samples, ("format: " + "; ".join(problems)) if problems else None


def index_recordings(folder: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every usable recording of ``folder`` and every entry skipped, with the reason.

    Returns ``(recordings, skipped)``: ``recordings`` has ``RECORDING_COLUMNS``, one row per file,
    sorted by (speaker, digit, take); ``skipped`` has ``file, reason`` in name order. Of two names
    of one (digit, speaker, take), FSDD's spelling (``0_a_1.wav``, not ``0_a_01.wav``) is kept. Raises
    ``MissingRecordingsError`` when the folder is absent, ``FsddError`` when nothing in it is usable.
    """
    root = Path(folder)
    if not root.is_dir():
        raise MissingRecordingsError(missing_folder_message(folder))
    rows: list[tuple[int, str, int, str, int, int]] = []
    skipped: list[tuple[str, str]] = []
    seen: dict[tuple[int, str, int], str] = {}
    for path in sorted(root.iterdir(), key=_canonical_first):
        parsed = parse_name(path.name)
        if parsed is None:
            skipped.append((path.name, "name: not {digit}_{speaker}_{index}.wav"))
            continue
        if parsed in seen:
            skipped.append(
                (path.name, f"duplicate: the same digit, speaker and take as {seen[parsed]}")
            )
            continue
        samples, reason = _check_file(path)
        if reason is not None:
            skipped.append((path.name, reason))
            continue
        seen[parsed] = path.name
        digit, speaker, take = parsed
        rows.append((recording_id(digit, speaker, take), path.name, digit, speaker, take, samples))
    recordings = _recordings_table(rows)
    skipped_table = pd.DataFrame(sorted(skipped), columns=list(SKIPPED_COLUMNS)).astype(str)
    if recordings.empty:
        raise FsddError(
            f"{root}: none of its {len(skipped)} entries is a usable FSDD recording (reasons: "
            f"{skip_counts(skipped_table)}); point `{RECORDINGS_PARAMETER}` at FSDD's recordings/"
        )
    if len(skipped_table):
        logger.warning(
            "FSDD: %d of %d entries of %s skipped (%s); first: %s",
            len(skipped_table),
            len(skipped_table) + len(recordings),
            root,
            skip_counts(skipped_table),
            skipped_table.iloc[0].to_dict(),
        )
    logger.info(
        "FSDD: %d recordings of %d speakers in %s",
        len(recordings),
        recordings["speaker"].nunique(),
        root,
    )
    return recordings, skipped_table


def _canonical_first(path: Path) -> tuple[bool, str]:
    """Sort key: names in FSDD's own spelling first (``0_a_1.wav`` is kept, ``0_a_01.wav`` is the
    duplicate), then by name."""
    parsed = parse_name(path.name)
    canonical = parsed is not None and path.name == "{}_{}_{}.wav".format(*parsed)
    return not canonical, path.name


def _recordings_table(rows: Sequence[tuple[int, str, int, str, int, int]]) -> pd.DataFrame:
    columns = [c for c in RECORDING_COLUMNS if c != "duration_s"]
    table = pd.DataFrame(rows, columns=columns)
    table["duration_s"] = table["samples"] / SAMPLE_RATE
    table = table.astype(RECORDING_COLUMNS)
    clashes = table["stay_id"].duplicated(keep=False)
    if clashes.any():  # 48-bit hashes of a few thousand names: never seen, but never silent
        raise FsddError(f"recording ids collide for {table.loc[clashes, 'file'].tolist()}")
    return table.sort_values(["speaker", "digit", "take"], ignore_index=True)


def skip_counts(skipped: pd.DataFrame) -> dict[str, int]:
    """Skipped entries per kind of reason (the text before the first colon)."""
    kinds = skipped["reason"].astype(str).str.split(":", n=1).str[0]
    return {str(k): int(v) for k, v in kinds.value_counts().sort_index().items()}


def read_waveforms(folder: str | Path, files: Sequence[str]) -> list[np.ndarray]:
    """The int16 samples of each of ``files`` (names inside ``folder``), in that order."""
    root = Path(folder)
    if not root.is_dir():
        raise MissingRecordingsError(missing_folder_message(folder))
    waves = []
    for name in files:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", wavfile.WavFileWarning)
            rate, data = wavfile.read(root / name)
        if rate != SAMPLE_RATE or data.ndim != 1 or data.dtype != SAMPLE_DTYPE:
            raise FsddError(f"{root / name} is no longer 8 kHz mono int16; re-index the folder")
        waves.append(np.asarray(data))
    return waves
