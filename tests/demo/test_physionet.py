"""``make real-demo``'s sources: the MIMIC-IV demo linked or fetched (from a 127.0.0.1 server here,
never from the internet), checked against SHA256SUMS, and its synthetic X-ray export."""

from __future__ import annotations

import functools
import hashlib
import http.server
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mindkd.demo.physionet import (
    CHECKSUMS,
    NEEDED_FILES,
    RealDemoError,
    fetch_mimic_iv_demo,
    main,
    prepare_real_demo,
)


@pytest.fixture(scope="module")
def mimic_iv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic MIMIC-IV folder laid out as PhysioNet serves the demo (with checksums)."""
    from mindkd.demo.config import DemoConfig
    from mindkd.demo.generator import generate

    root = tmp_path_factory.mktemp("export")
    generate(root, DemoConfig(patients=40, seed=3, write_jpegs=False))
    folder = root / "mimic-iv"
    (folder / "LICENSE.txt").write_text("Open Data Commons Open Database License v1.0\n")
    (folder / "README.txt").write_text("not needed by the pipeline: never fetched\n")
    _write_checksums(folder)
    return folder


def _write_checksums(folder: Path) -> None:
    lines = [
        f"{hashlib.sha256(p.read_bytes()).hexdigest()} {p.relative_to(folder).as_posix()}"
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != CHECKSUMS
    ]
    (folder / CHECKSUMS).write_text("\n".join(lines) + "\n")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server(tmp_path: Path, mimic_iv: Path) -> Iterator[tuple[str, Path]]:
    """A copy of ``mimic_iv`` served on 127.0.0.1 (the copy may be tampered with)."""
    served = tmp_path / "served"
    shutil.copytree(mimic_iv, served)
    handler = functools.partial(_Quiet, directory=str(served))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/", served
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_fetch_downloads_the_needed_files_checked_and_only_once(
    server: tuple[str, Path], tmp_path: Path
) -> None:
    url, served = server
    dest = tmp_path / "dest"
    fetched = fetch_mimic_iv_demo(dest, url, timeout=10)
    assert sorted(fetched) == sorted(NEEDED_FILES)
    for name in NEEDED_FILES:
        assert (dest / name).read_bytes() == (served / name).read_bytes()
    assert not (dest / "README.txt").exists()
    assert not list(dest.rglob(".tmp-*"))
    assert fetch_mimic_iv_demo(dest, url, timeout=10) == []  # checked, not fetched again
    (dest / "icu/icustays.csv.gz").write_bytes(b"truncated")
    assert fetch_mimic_iv_demo(dest, url, timeout=10) == ["icu/icustays.csv.gz"]


def test_a_corrupt_download_is_refused_and_leaves_nothing(
    server: tuple[str, Path], tmp_path: Path
) -> None:
    url, served = server
    with (served / "hosp/patients.csv.gz").open("ab") as handle:
        handle.write(b"tampered")
    dest = tmp_path / "dest"
    with pytest.raises(RealDemoError, match=r"hosp/patients\.csv\.gz: SHA-256 .* differs"):
        fetch_mimic_iv_demo(dest, url, timeout=10)
    assert not (dest / "hosp/patients.csv.gz").exists()
    assert not list(dest.rglob(".tmp-*"))


def test_no_route_says_where_to_get_the_data(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(RealDemoError, match=r"cannot reach .*MIMIC_DEMO_DIR=/path/to/"):
        fetch_mimic_iv_demo(tmp_path / "dest", f"http://127.0.0.1:{port}/", timeout=5)
    assert main([str(tmp_path / "root"), "--base-url", f"http://127.0.0.1:{port}/"]) == 2


def test_prepare_links_a_local_copy_and_writes_its_xrays_once(
    mimic_iv: Path, tmp_path: Path
) -> None:
    root = tmp_path / "real-demo"
    demo = prepare_real_demo(root, mimic_iv)
    assert (root / "mimic-iv").is_symlink()
    assert (root / "mimic-iv").resolve() == mimic_iv.resolve()
    assert (root / "mimic-cxr-jpg/mimic-cxr-2.0.0-metadata.csv.gz").is_file()
    assert "linked, not copied" in demo.actions[0]
    again = prepare_real_demo(root, mimic_iv)
    assert again.actions == (f"{root / 'mimic-iv'} -> {mimic_iv} (linked before)",
                             f"{root / 'mimic-cxr-jpg'} (up to date)")  # fmt: skip
    assert prepare_real_demo(root, mimic_iv, seed=1).actions[1].endswith("synthetic images")


def test_prepare_fetches_when_no_copy_is_given(server: tuple[str, Path], tmp_path: Path) -> None:
    url, _ = server
    demo = prepare_real_demo(tmp_path / "real-demo", None, base_url=url)
    assert "fetched" in demo.actions[0]
    assert not (demo.mimic_iv).is_symlink()
    assert (demo.mimic_cxr_jpg / "mimic-cxr-2.0.0-split.csv.gz").is_file()


def test_prepare_refuses_what_is_not_the_demo(mimic_iv: Path, tmp_path: Path) -> None:
    with pytest.raises(RealDemoError, match=r"lacks \['hosp/admissions\.csv\.gz'"):
        prepare_real_demo(tmp_path / "a", mimic_iv / "hosp")  # a wrong folder
    root = tmp_path / "b"
    (root / "mimic-iv").mkdir(parents=True)
    with pytest.raises(RealDemoError, match=r"is a folder .* not a link"):
        prepare_real_demo(root, mimic_iv)
