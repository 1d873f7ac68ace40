"""How fast the X-ray stage decodes full-size JPEGs, against the floor and a naive pipeline.

Generates N full-size grayscale JPEGs (default 200 at 2500x3000, smooth anatomy-like shapes plus
film grain, quality 90) in a cache folder once, then prints in one run:

- floor:   open + draft + load only (the cheapest possible decode at the target scale);
- naive:   ``Image.open(p).convert("L").resize((S, S))``, what open pipelines in this field do
           (a full-resolution decode, then a squashing resize);
- stage:   ``build_image_store`` with 1 and with 2 workers (decode, resize, crop, write);
- ratios:  stage-1w / floor (target >= 0.8), stage-1w / naive (>= 1.5), 2w / 1w (>= 1.7);
- peak RSS of the stage (build_image_store + ArrayStoreDataset save) at N and at 2N images, each
  in a fresh process, for the parent and for the decode workers (target: independent of N).

Throughputs are the best of ``--repeats`` runs, with the page cache warm and the worker server
started (a real run decodes for hours, so pool start-up is not part of the steady state).

    python benchmarks/cxr_decode.py [--n 200] [--size 224] [--repeats 2]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFilter

from mindkd.io.array_store import ArrayStoreDataset
from mindkd.mimic.cxr import image_relpaths
from mindkd.processing.images import build_image_store

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CACHE = PROJECT_ROOT / ".cache" / "benchmarks" / "cxr_decode"


# ---------------------------------------------------------------------------------------------
# Synthetic full-size X-rays
# ---------------------------------------------------------------------------------------------


def _synthetic_xray(seed: int, width: int, height: int) -> Image.Image:
    """Grayscale with X-ray-like structure: body, lungs, spine, ribs, smooth noise, grain."""
    rng = np.random.default_rng(seed)
    shapes = Image.new("L", (width, height), 30)
    draw = ImageDraw.Draw(shapes)
    w, h = width, height
    draw.ellipse((0.05 * w, 0.05 * h, 0.95 * w, 1.05 * h), fill=170)  # body
    jitter = rng.uniform(-0.03, 0.03, 4)
    draw.ellipse((0.15 * w, (0.15 + jitter[0]) * h, 0.47 * w, (0.85 + jitter[1]) * h), fill=70)
    draw.ellipse((0.53 * w, (0.15 + jitter[2]) * h, 0.85 * w, (0.85 + jitter[3]) * h), fill=75)
    draw.rectangle((0.46 * w, 0.05 * h, 0.54 * w, h), fill=210)  # spine
    for k in range(10):  # ribs
        y = (0.18 + 0.065 * k) * h
        draw.arc((0.12 * w, y, 0.5 * w, y + 0.12 * h), 180, 330, fill=150, width=int(0.012 * w))
        draw.arc((0.5 * w, y, 0.88 * w, y + 0.12 * h), 210, 360, fill=150, width=int(0.012 * w))
    heart = rng.uniform(0.35, 0.45)
    draw.ellipse((heart * w, 0.45 * h, (heart + 0.3) * w, 0.8 * h), fill=190)
    shapes = shapes.filter(ImageFilter.GaussianBlur(radius=w / 200))

    low = rng.normal(0, 18, (h // 64 + 1, w // 64 + 1)).astype(np.float32)
    smooth = np.asarray(Image.fromarray(low).resize((w, h), Image.Resampling.BICUBIC))
    grain = rng.normal(0, 5, (h, w)).astype(np.float32)
    pixels = np.asarray(shapes, dtype=np.float32) + smooth + grain
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _write_one(args: tuple[int, str, int, int]) -> int:
    seed, path, width, height = args
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    partial = f"{path}.part"
    _synthetic_xray(seed, width, height).save(partial, format="JPEG", quality=90)
    os.replace(partial, path)
    return os.path.getsize(path)


def _image_table(n: int) -> pd.DataFrame:
    """N images in the PhysioNet layout (ids of the form MIMIC uses)."""
    subject = 10_000_000 + np.arange(n)
    table = pd.DataFrame(
        {
            "dicom_id": [f"{i:08x}-be4c0000-00000000-00000000-00000000" for i in range(n)],
            "subject_id": subject,
            "study_id": 50_000_000 + np.arange(n),
        }
    )
    table["path"] = image_relpaths(table)
    return table


def ensure_images(n: int, cache: Path, width: int, height: int) -> tuple[Path, pd.DataFrame]:
    root = cache / f"{width}x{height}"
    table = _image_table(n)
    todo = [
        (i, str(root / p), width, height)
        for i, p in enumerate(table["path"])
        if not (root / p).is_file()
    ]
    if todo:
        print(f"generating {len(todo)} JPEGs of {width}x{height} in {root} ...", flush=True)
        start = time.perf_counter()
        with ProcessPoolExecutor(max_workers=os.cpu_count()) as pool:
            list(pool.map(_write_one, todo, chunksize=4))
        print(f"  done in {time.perf_counter() - start:.0f} s", flush=True)
    return root, table


# ---------------------------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------------------------


def floor_decode(paths: list[str], size: int) -> None:
    for path in paths:
        with Image.open(path) as image:
            image.draft("L", (size, size))
            image.load()


def naive_decode(paths: list[str], size: int) -> None:
    for path in paths:
        Image.open(path).convert("L").resize((size, size))


def cpu_seconds() -> float:
    """CPU time of this process, its reaped children and the forkserver's reaped workers."""
    import psutil

    me = psutil.Process()
    total = sum(me.cpu_times()[:4])  # user, system, children_user, children_system
    for child in me.children():  # the forkserver reaps the pool's workers
        with contextlib.suppress(psutil.Error):
            total += sum(child.cpu_times()[:4])
    return total


def best_rate(run: Callable[[], object], n: int, repeats: int) -> tuple[float, float]:
    """(images/s of the fastest run, CPU ms per image in that run)."""
    best, cpu = float("inf"), 0.0
    for _ in range(repeats):
        cpu_start, start = cpu_seconds(), time.perf_counter()
        run()
        wall = time.perf_counter() - start
        if wall < best:
            best, cpu = wall, cpu_seconds() - cpu_start
    return n / best, 1000 * cpu / n


def stage(table: pd.DataFrame, root: Path, size: int, workers: int, scratch: Path) -> None:
    store, failures = build_image_store(
        table, root, size, workers=workers, progress=False, scratch_dir=scratch
    )
    assert failures.empty, failures.head()
    assert store.arrays["images"].shape == (len(table), size, size)


def rss_probe(n: int, args: argparse.Namespace) -> dict:
    """Run the stage once over n images (the N files repeated as needed); peak RSS in MB."""
    size, workers, cache = args.size, args.probe_workers, args.cache_dir
    root, base = ensure_images(args.n, cache, args.width, args.height)
    reps = -(-n // len(base))
    table = pd.concat([base] * reps, ignore_index=True).head(n)
    table["dicom_id"] = [f"probe{i:07d}" for i in range(n)]
    table = table[["dicom_id", "path"]]

    import psutil

    me = psutil.Process()
    worker_peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            for child in me.children(recursive=True):
                try:
                    worker_peak[0] = max(worker_peak[0], child.memory_info().rss)
                except psutil.Error:
                    pass

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    with tempfile.TemporaryDirectory(dir=cache) as scratch:
        store, _ = build_image_store(
            table, root, size, workers=workers, progress=False, scratch_dir=scratch
        )
        ArrayStoreDataset(filepath=f"{scratch}/store").save(store)
        del store
    done.set()
    sampler.join()
    return {
        "n": n,
        "workers": workers,
        "parent_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "worker_peak_mb": worker_peak[0] / 2**20,
        "image_mb": n * size * size / 2**20,
    }


def _probe_in_subprocess(args: argparse.Namespace, n: int, workers: int) -> dict:
    command = [
        sys.executable,
        __file__,
        "--rss-probe",
        str(n),
        "--probe-workers",
        str(workers),
        "--n",
        str(args.n),
        "--size",
        str(args.size),
        "--cache-dir",
        str(args.cache_dir),
        "--width",
        str(args.width),
        "--height",
        str(args.height),
    ]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="images (default 200)")
    parser.add_argument("--size", type=int, default=224, help="output side in pixels")
    parser.add_argument("--width", type=int, default=2500)
    parser.add_argument("--height", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=2, help="best of this many runs")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--rss-probe", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--probe-workers", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.cache_dir.mkdir(parents=True, exist_ok=True)

    if args.rss_probe:
        print(json.dumps(rss_probe(args.rss_probe, args)))
        return

    root, table = ensure_images(args.n, args.cache_dir, args.width, args.height)
    paths = [str(root / p) for p in table["path"]]
    n, size = len(paths), args.size
    mean_mb = np.mean([os.path.getsize(p) for p in paths]) / 1e6
    for path in paths:  # warm the page cache: measure decoding, not the disk
        Path(path).read_bytes()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} logical CPUs "
        f"(load average {os.getloadavg()[0]:.2f}), Python {platform.python_version()}, "
        f"Pillow {Image.__version__}"
    )
    print(f"images: {n} JPEGs {args.width}x{args.height}, mean {mean_mb:.2f} MB; output {size}px")

    with tempfile.TemporaryDirectory(dir=args.cache_dir) as scratch_dir:
        scratch = Path(scratch_dir)
        stage(table.head(4), root, size, 2, scratch)  # start the worker server once
        rates = {
            "floor (open+draft+load)": best_rate(
                lambda: floor_decode(paths, size), n, args.repeats
            ),
            "naive (full decode+resize)": best_rate(
                lambda: naive_decode(paths, size), n, args.repeats
            ),
            "stage, 1 worker": best_rate(
                lambda: stage(table, root, size, 1, scratch), n, args.repeats
            ),
            "stage, 2 workers": best_rate(
                lambda: stage(table, root, size, 2, scratch), n, args.repeats
            ),
        }
    for name, (rate, cpu_ms) in rates.items():
        print(f"  {name:<28} {rate:8.1f} images/s   {cpu_ms:6.1f} CPU-ms/image")
    one, two = rates["stage, 1 worker"][0], rates["stage, 2 workers"][0]
    checks = [
        ("stage-1w / floor", one / rates["floor (open+draft+load)"][0], 0.8),
        ("stage-1w / naive", one / rates["naive (full decode+resize)"][0], 1.5),
        ("stage-2w / stage-1w", two / one, 1.7),
    ]
    for name, value, target in checks:
        verdict = "ok" if value >= target else "BELOW TARGET"
        print(f"  {name:<28} {value:8.2f}   (target >= {target}: {verdict})")
    overhead = rates["stage, 2 workers"][1] / rates["stage, 1 worker"][1]
    print(
        f"  CPU per image, 2w / 1w        {overhead:8.2f}   (parallel overhead; wall-clock scaling "
        f"needs 2 idle cores, load average now {os.getloadavg()[0]:.2f})"
    )

    print("peak RSS of the stage (build_image_store + save), fresh process each:")
    for workers in (1, 2):
        for count in (n, 2 * n):
            probe = _probe_in_subprocess(args, count, workers)
            worker = f", largest worker {probe['worker_peak_mb']:.0f} MB" if workers > 1 else ""
            print(
                f"  {workers} worker(s), N={count:<6} parent {probe['parent_peak_mb']:.0f} MB"
                f"{worker}  (decoded pixels: {probe['image_mb']:.0f} MB)"
            )


if __name__ == "__main__":
    main()
