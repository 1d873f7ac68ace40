"""Decode each needed chest X-ray JPEG once into a square uint8 image store.

The decode recipe (``load_xray``):

1. ``Image.open`` + ``draft("L", (size, size))``: libjpeg's DCT scaling decodes the JPEG directly
   at 1/2, 1/4 or 1/8 of its size: the strongest reduction whose result is still at least ``size``
   on both sides (a 2500x3000 X-ray decodes at 313x375 for ``size=224``). This skips most of the
   inverse DCT and colour work, the bulk of the cost of a full decode.
2. Convert to 8-bit grayscale ("L"; a no-op for MIMIC-CXR-JPG).
3. Resize so the shorter side is ``size`` and centre-crop to ``size`` x ``size``, in one antialiased
   bilinear resample of the centred square (``Image.resize(box=...)``).

``build_image_store`` runs that recipe over a table of images in a process pool. Workers return
each chunk's pixels as one byte block; the parent appends the blocks in input order to a temporary
file preallocated for every image (it never maps the file while writing), so the memory of the
stage does not grow with the number of images. The file becomes the ``images`` array of the
returned ``ArrayStore`` as a read-only ``np.memmap``; ``ArrayStoreDataset`` copies it file-wise on
save, and the temporary file is deleted when the array is garbage-collected.

A killed run cleans up after itself as far as it can: the temporary file is named after its process
and the next decode deletes it (``mindkd.io.scratch``), and the workers die with the run
(``mindkd.processing.workers``).

Only files under the export's ``files/`` folder are read. Paths are built from ids that have the
MIMIC form (``mindkd.mimic.cxr.image_relpaths``), and a worker opens a file only when its resolved
path (links followed) still lies under the resolved ``files/`` folder. Images whose ids cannot name
a file (``invalid id``), that resolve elsewhere (``outside files/``), are missing or unreadable are
skipped and reported; too many of them is an error (``cxr.max_failed_fraction``).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import multiprocessing
import os
import weakref
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageFile
from tqdm.auto import tqdm

from mindkd.io.array_store import ArrayStore
from mindkd.io.scratch import new_scratch_file
from mindkd.mimic.cxr import IMAGES_DIR, image_id_problems, image_relpaths
from mindkd.processing.workers import die_with_run, lifeline

logger = logging.getLogger(__name__)

FAILURE_COLUMNS: tuple[str, ...] = ("dicom_id", "path", "reason")
# Failure reasons (the text before the first ':' is the kind the reports count).
MISSING = "missing"
OUTSIDE = "outside files/: the path resolves outside the export's files/ folder (a link?)"
MAX_FAILED_FRACTION_KEY = "cxr.max_failed_fraction"
_RESAMPLE = Image.Resampling.BILINEAR

# (first input position, number of inputs, pixels of the decoded ones in order, failures)
_ChunkResult = tuple[int, int, bytearray, list[tuple[int, str]]]


class ImageDecodeError(RuntimeError):
    """Too many X-ray images could not be decoded, or decoding cannot be trusted."""


def open_scaled(path: str | os.PathLike[str], size: int) -> Image.Image:
    """Open and decode a JPEG at the smallest DCT scale whose shorter side is still >= ``size``.

    The returned image is loaded (pixels decoded); its size is the drafted size, e.g. (313, 375) for
    a 2500x3000 JPEG and ``size=224``. Raises ``FileNotFoundError`` for a missing file and
    ``OSError`` (PIL) for an unreadable or truncated one.
    """
    image = Image.open(path)
    try:
        image.draft("L", (size, size))
        image.load()
    except BaseException:
        image.close()
        raise
    return image


def _square(image: Image.Image, size: int) -> Image.Image:
    """Shorter side to ``size`` and centre crop, as one resample of the centred square."""
    if image.mode != "L":
        image = image.convert("L")
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) / 2, (height - side) / 2
    return image.resize((size, size), _RESAMPLE, box=(left, top, left + side, top + side))


def load_xray(path: str | os.PathLike[str], size: int) -> np.ndarray:
    """Decode one X-ray JPEG to a ``(size, size)`` uint8 array (see the module docstring)."""
    with open_scaled(path, size) as image:
        return np.asarray(_square(image, size), dtype=np.uint8)


def _check_truncated_flag() -> None:
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise ImageDecodeError(
            "PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True in this process (imported code set it): "
            "truncated X-rays would be decoded with grey padding instead of being reported. Set it "
            "back to False before building the image store."
        )


def _decode_chunk(start: int, paths: Sequence[str], size: int, files_root: str) -> _ChunkResult:
    """Decode ``paths`` (input positions ``start``, ...): the hot loop, no pandas in it.

    ``files_root`` is the resolved ``files/`` folder: a path that resolves outside it is not opened.
    """
    _check_truncated_flag()
    frame = size * size
    pixels = bytearray(len(paths) * frame)
    failures: list[tuple[int, str]] = []
    filled = 0
    inside = files_root.rstrip(os.sep) + os.sep
    for offset, path in enumerate(paths):
        if not os.path.realpath(path).startswith(inside):
            failures.append((start + offset, OUTSIDE))
            continue
        try:
            with open_scaled(path, size) as image:
                data = _square(image, size).tobytes()
        except FileNotFoundError:
            failures.append((start + offset, MISSING))
            continue
        except Exception as exc:  # any decoder error is a per-image failure, reported by path
            failures.append((start + offset, f"unreadable: {type(exc).__name__}: {exc}"))
            continue
        pixels[filled : filled + frame] = data
        filled += frame
    del pixels[filled:]
    return start, len(paths), pixels, failures


def _pool_context() -> multiprocessing.context.BaseContext:
    # forkserver: workers fork from a clean server process, never from a parent that may run threads
    # (tqdm monitor, torch, Kedro's ThreadRunner); preloading this module makes each fork cheap.
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
        return context
    return multiprocessing.get_context("spawn")


def _decode_chunks(
    chunks: Sequence[tuple[int, Sequence[str]]], size: int, workers: int, files_root: str
) -> Iterator[_ChunkResult]:
    """Yield chunk results in input order; at most ``4 * workers`` chunks are in flight."""
    if workers == 1:
        for start, paths in chunks:
            yield _decode_chunk(start, paths, size, files_root)
        return
    with lifeline() as line:  # a killed run takes its workers with it
        pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=_pool_context(),
            initializer=die_with_run,
            initargs=(line,),
        )
        try:
            pending: deque[Future[_ChunkResult]] = deque()
            todo = iter(chunks)
            for start, paths in todo:
                pending.append(pool.submit(_decode_chunk, start, paths, size, files_root))
                if len(pending) >= 4 * workers:
                    break
            while pending:
                result = pending.popleft().result()
                following = next(todo, None)
                if following is not None:
                    pending.append(
                        pool.submit(_decode_chunk, following[0], following[1], size, files_root)
                    )
                yield result
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _resolve_paths(
    paths_table: pd.DataFrame, root: str | Path
) -> tuple[list[str | None], pd.Series]:
    """Each image's path (``None`` where its ids cannot name a file) and why not (``<NA>``: fine)."""
    if "path" in paths_table.columns:
        relative = paths_table["path"].astype("string")
        problems = pd.Series(pd.NA, index=paths_table.index, dtype="string")
    else:
        relative = image_relpaths(paths_table)
        problems = image_id_problems(paths_table)
    root_str = str(root).rstrip("/")
    absolute = relative.str.startswith("/").fillna(False).astype(bool)
    paths = relative.where(absolute, root_str + "/" + relative)
    return paths.astype(object).where(paths.notna(), None).tolist(), problems.reset_index(drop=True)


def _validate_inputs(
    paths_table: pd.DataFrame, size: int, workers: int, max_failed_fraction: float
) -> None:
    needed = ["dicom_id"] + ([] if "path" in paths_table.columns else ["subject_id", "study_id"])
    missing = [column for column in needed if column not in paths_table.columns]
    if missing:
        raise KeyError(
            f"build_image_store: the images table lacks column(s) {missing} "
            f"(has {list(paths_table.columns)})"
        )
    duplicated = paths_table["dicom_id"][paths_table["dicom_id"].duplicated()]
    if len(duplicated):
        raise ValueError(
            f"build_image_store: {len(duplicated)} duplicated dicom_id(s) in the images table, "
            f"e.g. {duplicated.head(5).tolist()}; each image must be listed once"
        )
    if size < 1:
        raise ValueError(f"image size must be a positive number of pixels, got {size}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if not 0.0 <= max_failed_fraction <= 1.0:
        raise ValueError(f"{MAX_FAILED_FRACTION_KEY} must lie in [0, 1], got {max_failed_fraction}")


def failure_counts(failures: pd.DataFrame) -> dict[str, int]:
    """Skipped images per kind of reason (``missing``, ``unreadable``, ``invalid id``, ...)."""
    kinds = failures["reason"].astype(str).str.split(":").str[0]
    return {str(kind): int(n) for kind, n in kinds.value_counts().items()}


def _example(row: tuple) -> str:
    """One failure for a message: its path, or its dicom_id when no path was built."""
    where = row.path if isinstance(row.path, str) else f"dicom_id {row.dicom_id!r}"
    return f"{where} ({row.reason})"


def _raise_if_too_many(failures: pd.DataFrame, total: int, max_failed_fraction: float) -> None:
    if total == 0 or len(failures) / total <= max_failed_fraction:
        return
    fraction = len(failures) / total
    examples = "\n  ".join(_example(row) for row in failures.head(5).itertuples(index=False))
    raise ImageDecodeError(
        f"{len(failures)} of {total} X-ray images ({fraction:.2%}) could not be decoded "
        f"({failure_counts(failures)}), more than "
        f"{MAX_FAILED_FRACTION_KEY} = {max_failed_fraction:.2%}. Examples:\n  {examples}\n"
        "Check that mimic_cxr_jpg_dir points at a complete MIMIC-CXR-JPG export (its files/ tree, "
        f"and metadata with MIMIC-form ids), or raise {MAX_FAILED_FRACTION_KEY} to accept the loss."
    )


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def build_image_store(
    paths_table: pd.DataFrame,
    root: str | Path,
    size: int,
    workers: int | None = None,
    max_failed_fraction: float = 0.01,
    *,
    chunk_size: int | None = None,
    scratch_dir: str | Path | None = None,
    progress: bool | None = None,
) -> tuple[ArrayStore, pd.DataFrame]:
    """Decode every image of ``paths_table`` once into an ``ArrayStore`` of (N, size, size) uint8.

    Args:
        paths_table: one row per image: ``dicom_id`` plus either ``subject_id`` and ``study_id``
            (the PhysioNet path ``files/pXX/pSUBJECT/sSTUDY/DICOM.jpg`` is built from them when
            they have the MIMIC form) or ``path`` (relative to ``root`` unless absolute; it must
            still resolve under ``root/files``). dicom_ids must be unique.
        root: the MIMIC-CXR-JPG export folder (``mimic_cxr_jpg_dir``).
        size: side of the square output images, in pixels.
        workers: decode processes (default ``os.cpu_count()``); 1 decodes in this process.
        max_failed_fraction: largest tolerated fraction of missing/unreadable images
            (``cxr.max_failed_fraction``); above it ``ImageDecodeError`` is raised.
        chunk_size: images per task sent to a worker (default: up to 64, >= 8 tasks per worker).
        scratch_dir: where the temporary pixel file (N·size² bytes) lives; default: the system temp
            folder (``TMPDIR``). Point it at a disk, not a RAM-backed tmpfs, at real scale. The
            pixel files that killed runs left there are deleted first.
        progress: show a tqdm bar; ``None`` shows it only on a terminal.

    Returns:
        The store (``arrays["images"]``, index ``dicom_id``, ``subject_id``/``study_id`` when given,
        ``row``; only successfully decoded images, in input order) and the failures (``dicom_id``,
        ``path``, ``reason``), in input order. Reasons: ``"invalid id: <columns>"`` (the ids cannot
        name a file of the export; no path is built, ``path`` is empty), ``"outside files/: ..."``
        (the path resolves, through a link, outside ``root/files``; the file is not opened),
        ``"missing"``, ``"unreadable: <error>"``.
    """
    workers = (os.cpu_count() or 1) if workers is None else workers
    _validate_inputs(paths_table, size, workers, max_failed_fraction)
    _check_truncated_flag()
    paths, problems = _resolve_paths(paths_table, root)
    total, frame = len(paths), size * size
    # Rows whose ids name no file are failures already; only the others reach a decoder.
    failed = [(at, problems.iloc[at]) for at, path in enumerate(paths) if path is None]
    todo = [at for at, path in enumerate(paths) if path is not None]
    todo_paths = [paths[position] for position in todo]
    if chunk_size is None:
        chunk_size = int(np.clip(len(todo) // (8 * workers), 1, 64))
    chunks = [(at, todo_paths[at : at + chunk_size]) for at in range(0, len(todo), chunk_size)]
    workers = max(1, min(workers, len(chunks)))
    files_root = os.path.realpath(os.path.join(str(root), IMAGES_DIR))
    logger.info(
        "Decoding %d X-ray images to %dx%d with %d worker(s) (root %s; %d with invalid ids skipped)",
        len(todo),
        size,
        size,
        workers,
        root,
        len(failed),
    )

    descriptor, scratch = new_scratch_file("cxr_images_", ".u8", scratch_dir)
    try:
        with os.fdopen(descriptor, "wb", buffering=0) as out:
            _preallocate(out.fileno(), len(todo) * frame, scratch)
            bar = tqdm(
                total=len(todo),
                unit="img",
                desc="decode X-rays",
                disable=_progress_disabled(progress),
            )
            results = _decode_chunks(chunks, size, workers, files_root)
            with bar, contextlib.closing(results):
                for _start, count, pixels, chunk_failures in results:
                    out.write(pixels)
                    failed.extend((todo[at], reason) for at, reason in chunk_failures)
                    bar.update(count)
            out.truncate((total - len(failed)) * frame)
        failed.sort()
        failures = _failure_table(paths_table, paths, failed)
        _raise_if_too_many(failures, total, max_failed_fraction)
        images = _open_scratch(scratch, total - len(failed), size)
    except BaseException:
        _unlink(scratch)
        raise

    if len(failures):
        logger.warning(
            "%d of %d X-ray images skipped (%s); first: %s",
            len(failures),
            total,
            failure_counts(failures),
            _example(next(failures.itertuples(index=False))),
        )
    keep = np.ones(total, dtype=bool)
    keep[[position for position, _ in failed]] = False
    id_columns = [c for c in ("dicom_id", "subject_id", "study_id") if c in paths_table.columns]
    index = paths_table.loc[keep, id_columns].reset_index(drop=True)
    index["row"] = np.arange(len(index), dtype=np.int64)
    metadata = {
        "image_size": size,
        "resample": "bilinear, shorter side to size, centre crop",
        "jpeg_draft": True,
        "n_requested": total,
        "n_failed": len(failures),
    }
    store = ArrayStore(arrays={"images": images}, index=index, key="dicom_id", metadata=metadata)
    return store, failures


def _progress_disabled(progress: bool | None) -> bool | None:
    """tqdm's ``disable``: ``None`` disables on a non-terminal, ``False`` forces the bar on."""
    return None if progress is None else not progress


def _preallocate(descriptor: int, nbytes: int, scratch: str) -> None:
    if nbytes == 0 or not hasattr(os, "posix_fallocate"):
        return
    try:
        os.posix_fallocate(descriptor, 0, nbytes)
    except OSError as exc:
        raise OSError(
            f"cannot reserve {nbytes / 1e9:.2f} GB for the decoded images in {scratch}: {exc}. "
            "Free space there or pass another scratch_dir."
        ) from exc


def _open_scratch(scratch: str, rows: int, size: int) -> np.ndarray:
    """The decoded pixels as a read-only memmap that deletes its file when garbage-collected."""
    if rows == 0:
        _unlink(scratch)
        return np.zeros((0, size, size), dtype=np.uint8)
    images = np.memmap(scratch, dtype=np.uint8, mode="r", shape=(rows, size, size))
    weakref.finalize(images, _unlink, scratch)
    return images


def _failure_table(
    paths_table: pd.DataFrame, paths: Sequence[str | None], failed: Sequence[tuple[int, str]]
) -> pd.DataFrame:
    positions = [position for position, _ in failed]
    return pd.DataFrame(
        {
            "dicom_id": paths_table["dicom_id"].to_numpy()[positions],
            "path": [paths[position] for position in positions],
            "reason": [reason for _, reason in failed],
        },
        columns=list(FAILURE_COLUMNS),
    )


def fingerprint_images(task_images: pd.DataFrame, root: Path, size: int) -> str:
    """A digest of what decoding would produce: image ids, paths, file sizes and times, and the size.

    Cheap (one ``stat`` per file) next to decoding, so a re-run with unchanged inputs skips the decode.
    """
    digest = hashlib.sha256(f"size={size};root={root.resolve()}".encode())
    relpaths = image_relpaths(task_images)  # <NA> where the ids cannot name a file
    for dicom_id, relpath in zip(task_images["dicom_id"], relpaths, strict=True):
        if pd.isna(relpath):
            digest.update(f"{dicom_id}:invalid;".encode())
            continue
        try:
            stat = os.stat(root / relpath)
            digest.update(f"{dicom_id}:{stat.st_size}:{stat.st_mtime_ns};".encode())
        except FileNotFoundError:
            digest.update(f"{dicom_id}:missing;".encode())
    return digest.hexdigest()


def decode_or_reuse(
    task_images: pd.DataFrame,
    root: Path,
    previous: ArrayStore | None,
    *,
    size: int,
    workers: int | None = None,
    max_failed_fraction: float = 0.01,
    scratch_dir: str | Path | None = None,
) -> tuple[ArrayStore, pd.DataFrame]:
    """``build_image_store`` unless ``previous`` (the store on disk, or None) was decoded from the
    same inputs (``fingerprint_images``): then it is returned as it is, with its recorded failures."""
    fingerprint = fingerprint_images(task_images, root, size)
    if previous is not None and previous.metadata.get("fingerprint") == fingerprint:
        logger.info("Image store is up to date (%d images): decoding skipped", len(previous.index))
        return previous, pd.DataFrame(
            previous.metadata.get("failures", []), columns=["dicom_id", "path", "reason"]
        )
    store, failures = build_image_store(
        task_images,
        root,
        size=size,
        workers=workers,
        max_failed_fraction=max_failed_fraction,
        scratch_dir=scratch_dir,
    )
    store.metadata.update(
        fingerprint=fingerprint, image_size=size, failures=failures.to_dict("records")
    )
    return store, failures
