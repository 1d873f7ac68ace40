"""The real MIMIC-IV demo for ``make real-demo``: real EHR of 100 patients, synthetic X-rays beside it.

``prepare_real_demo(root)`` makes ``root/mimic-iv`` and ``root/mimic-cxr-jpg`` (the two paths of
``conf/real_demo/globals.yml``):

- ``mimic-iv``: the open MIMIC-IV Clinical Database Demo 2.2 (ODbL, no credentials). Given a local
  copy (``MIMIC_DEMO_DIR``) it is linked, never copied; otherwise it is downloaded from PhysioNet
  (``fetch_mimic_iv_demo``: the files the pipeline reads, each checked against PhysioNet's
  ``SHA256SUMS.txt`` and renamed into place only when complete). Where PhysioNet cannot be
  reached, ``RealDemoError`` says so and how to point at a local copy instead.
- ``mimic-cxr-jpg``: no MIMIC-CXR-JPG data is open, so ``mindkd.demo.cxr_for`` writes a synthetic
  export for the subjects and stays of that MIMIC-IV folder (image signal tied to their real
  outcomes). It is written again only when the MIMIC-IV folder or the seed changed.

CLI: ``python -m mindkd.demo.physionet ROOT [--mimic-iv DIR] [--seed S] [--base-url URL]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mindkd.mimic.schemas import TABLES

logger = logging.getLogger(__name__)

MIMIC_IV_DEMO_URL = "https://physionet.org/files/mimic-iv-demo/2.2/"
MIMIC_IV_DEMO_PAGE = "https://physionet.org/content/mimic-iv-demo/2.2/"
CHECKSUMS = "SHA256SUMS.txt"
#: What the pipeline reads from MIMIC-IV (``mindkd.mimic.schemas``), plus the licence.
NEEDED_FILES: tuple[str, ...] = (*sorted(t.relpath for t in TABLES.values()), "LICENSE.txt")
MIMIC_IV, MIMIC_CXR = "mimic-iv", "mimic-cxr-jpg"
_SOURCE_FILE = "source.json"  # beside mimic-cxr-jpg: which MIMIC-IV folder and seed made it
_CHUNK = 1 << 20


class RealDemoError(RuntimeError):
    """The real MIMIC-IV demo cannot be found or fetched; the message says what to do."""


def _where_to_get_it() -> str:
    return (
        f"download the open MIMIC-IV demo 2.2 (no credentials) from {MIMIC_IV_DEMO_PAGE} on a "
        "machine with internet and point at it: `make real-demo MIMIC_DEMO_DIR=/path/to/"
        "mimic-iv-demo-2.2` (the folder that holds hosp/ and icu/)"
    )


def missing_files(folder: Path) -> list[str]:
    """The files of ``NEEDED_FILES`` (the licence excepted) that ``folder`` lacks."""
    return [f for f in NEEDED_FILES if f != "LICENSE.txt" and not (folder / f).is_file()]


def _get(url: str, timeout: float) -> urllib.request.addinfourl:
    try:
        return urllib.request.urlopen(url, timeout=timeout)
    except urllib.error.HTTPError as exc:
        raise RealDemoError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise RealDemoError(
            f"cannot reach {url} ({reason}): this machine has no route to PhysioNet; "
            + _where_to_get_it()
        ) from exc


def _checksums(base_url: str, timeout: float) -> dict[str, str]:
    with _get(base_url + CHECKSUMS, timeout) as response:
        lines = response.read().decode("utf-8").splitlines()
    sums = {}
    for line in lines:
        digest, _, name = line.strip().partition(" ")
        if digest and name:
            sums[name.strip().lstrip("*")] = digest.lower()
    return sums


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(url: str, target: Path, expected: str, timeout: float) -> None:
    """``url`` into ``target``, via a temporary file renamed into place once its hash is right."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".tmp-{target.name}")
    digest = hashlib.sha256()
    try:
        with _get(url, timeout) as response, partial.open("wb") as handle:
            for block in iter(lambda: response.read(_CHUNK), b""):
                digest.update(block)
                handle.write(block)
        if digest.hexdigest() != expected:
            raise RealDemoError(
                f"{url}: SHA-256 {digest.hexdigest()} differs from {CHECKSUMS} ({expected}); the "
                "download is corrupt or the file changed on the server: run again"
            )
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def fetch_mimic_iv_demo(
    dest: Path, base_url: str = MIMIC_IV_DEMO_URL, timeout: float = 60.0
) -> list[str]:
    """Download the ``NEEDED_FILES`` of the MIMIC-IV demo into ``dest``; return those fetched.

    A file already in ``dest`` with the right SHA-256 is kept. Every file is checked against the
    server's ``SHA256SUMS.txt`` and renamed into place only when complete, so an interrupted
    fetch leaves no half file under a real name.
    """
    base_url = base_url if base_url.endswith("/") else base_url + "/"
    sums = _checksums(base_url, timeout)
    unlisted = [f for f in NEEDED_FILES if f not in sums]
    if unlisted:
        raise RealDemoError(f"{base_url}{CHECKSUMS} does not list {unlisted}")
    fetched = []
    for name in NEEDED_FILES:
        target = dest / name
        if target.is_file() and _sha256(target) == sums[name]:
            continue
        logger.info("Fetching %s%s", base_url, name)
        _download(base_url + name, target, sums[name], timeout)
        fetched.append(name)
    return fetched


@dataclass(frozen=True)
class RealDemo:
    """The two source folders of the real demo, and what ``prepare_real_demo`` did."""

    mimic_iv: Path
    mimic_cxr_jpg: Path
    actions: tuple[str, ...]


def _link_mimic_iv(link: Path, source: Path) -> str:
    missing = missing_files(source)
    if missing:
        raise RealDemoError(
            f"MIMIC_DEMO_DIR={source} is not a MIMIC-IV folder: it lacks {missing}; "
            + _where_to_get_it()
        )
    if link.is_symlink():
        if link.resolve() == source.resolve():
            return f"{link} -> {source} (linked before)"
        link.unlink()
    elif link.exists():
        raise RealDemoError(
            f"{link} is a folder (an earlier download?), not a link: remove it to use "
            f"MIMIC_DEMO_DIR={source}, or unset MIMIC_DEMO_DIR to use it"
        )
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(source.resolve(), target_is_directory=True)
    return f"{link} -> {source} (linked, not copied)"


def _mimic_iv(root: Path, mimic_demo_dir: Path | None, base_url: str) -> str:
    folder = root / MIMIC_IV
    if mimic_demo_dir is not None:
        return _link_mimic_iv(folder, mimic_demo_dir)
    if folder.is_symlink() or (folder.is_dir() and not missing_files(folder)):
        if missing_files(folder):
            raise RealDemoError(f"{folder} lacks {missing_files(folder)}; " + _where_to_get_it())
        return f"{folder} (present)"
    fetched = fetch_mimic_iv_demo(folder, base_url)
    return f"{folder}: fetched {len(fetched)} file(s) from {base_url}"


def _cxr_for(root: Path, seed: int) -> str:
    from mindkd.demo.cxr_for import CxrForConfig, generate_cxr_for

    folder = (root / MIMIC_IV).resolve()
    source = {
        "mimic_iv": str(folder),
        "files": {f: [(folder / f).stat().st_size, (folder / f).stat().st_mtime_ns] for f in
                  NEEDED_FILES if (folder / f).is_file()},
        "seed": seed,
    }  # fmt: skip
    record = root / "_truth" / _SOURCE_FILE
    if (root / MIMIC_CXR).is_dir() and record.is_file():
        if json.loads(record.read_text()) == source:
            return f"{root / MIMIC_CXR} (up to date)"
    manifest = generate_cxr_for(root, root / MIMIC_IV, CxrForConfig(seed=seed))
    record.write_text(json.dumps(source, indent=2))
    return f"{root / MIMIC_CXR}: {manifest.counts.get('cxr_images', '?')} synthetic images"


def prepare_real_demo(
    root: Path,
    mimic_demo_dir: Path | None = None,
    *,
    seed: int = 0,
    base_url: str = MIMIC_IV_DEMO_URL,
) -> RealDemo:
    """``root/mimic-iv`` (linked, present or fetched) and its ``root/mimic-cxr-jpg``."""
    actions = (_mimic_iv(root, mimic_demo_dir, base_url), _cxr_for(root, seed))
    return RealDemo(root / MIMIC_IV, root / MIMIC_CXR, actions)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mindkd.demo.physionet", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("root", type=Path, help="folder for mimic-iv/ and mimic-cxr-jpg/")
    parser.add_argument(
        "--mimic-iv",
        type=Path,
        default=os.environ.get("MIMIC_DEMO_DIR") or None,
        help="a local copy of the MIMIC-IV demo (default: $MIMIC_DEMO_DIR; else download)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic X-rays")
    parser.add_argument("--base-url", default=MIMIC_IV_DEMO_URL, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        demo = prepare_real_demo(args.root, args.mimic_iv, seed=args.seed, base_url=args.base_url)
    except RealDemoError as exc:
        print(f"make real-demo: {exc}", file=sys.stderr)  # noqa: T201 (a CLI's one message)
        return 2
    for action in demo.actions:
        logger.info("%s", action)
    return 0


if __name__ == "__main__":
    sys.exit(main())
