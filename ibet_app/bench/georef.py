"""What georeferencing costs per detection: the flat tangent plane (the baseline), the same rays
cast on the curved Earth (long range), and cast onto DEMs of 5 m and 1 m cells, side by side on
the same drone frames at the pipeline's operating point (a drone 70-120 m up looking 25-45 deg
down, 1-10 boxes a frame), and a tower camera looking 2-10 km out (the ellipsoid's case)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from fuse.georef import georeference_drone
from fuse.ground_points import GeorefSigmas
from fuse.terrain import Dem, load_dem
from ibet.messages import Telemetry

LAT0, LON0 = 49.0, -122.75
W, H = 1280, 720


def _frames(n: int, seed: int, long_range: bool) -> list[tuple[np.ndarray, Telemetry]]:
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n):
        boxes = []
        for _ in range(int(rng.integers(1, 11))):
            u, v = rng.uniform(50, W - 50), rng.uniform(60 if not long_range else H / 2 + 5, H - 5)
            boxes.append([u - 10, v - 40, u + 10, v])
        alt, down = (rng.uniform(70, 120), rng.uniform(25, 45)) if not long_range else (rng.uniform(600, 1500), 4.0)
        frames.append((np.array(boxes), Telemetry(
            sensor_lat_deg=LAT0 + rng.uniform(-0.003, 0.003), sensor_lon_deg=LON0 + rng.uniform(-0.004, 0.004),
            sensor_alt_m=100.0 + alt, platform_heading_deg=rng.uniform(0, 360), platform_pitch_deg=0.0,
            platform_roll_deg=0.0, sensor_rel_azimuth_deg=0.0, sensor_rel_elevation_deg=-down, hfov_deg=40.0)))
    return frames


def _dem(workdir: Path, cell_m: float, half_m: float = 3000.0) -> Dem:
    import rasterio
    from pyproj import Transformer
    from rasterio.transform import from_origin

    x0, y0 = Transformer.from_crs("EPSG:4326", "EPSG:32610", always_xy=True).transform(LON0, LAT0)
    n = int(2 * half_m / cell_m)
    g = (np.arange(n) + 0.5) * cell_m - half_m
    gx, gy = np.meshgrid(g, -g)
    z = 100.0 + 15.0 * np.sin(gx / 180.0) * np.cos(gy / 240.0) + 0.01 * gx  # rolling hills, +-15 m
    path = workdir / f"dem-{cell_m:g}m.tif"
    with rasterio.open(path, "w", driver="GTiff", width=n, height=n, count=1, dtype="float32", crs="EPSG:32610",
                       transform=from_origin(x0 - half_m, y0 + half_m, cell_m, cell_m)) as dst:
        dst.write(z.astype(np.float32), 1)
    return load_dem(path, sigma_m=1.0)


def _time_per_detection(frames, terrain, rounds: int) -> tuple[float, int]:
    sigmas = GeorefSigmas()
    boxes = sum(len(b) for b, _ in frames)
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        placed = 0
        for b, t in frames:
            placed += int(georeference_drone(b, W, H, t, 100.0, sigmas, terrain).valid.sum())
        best = min(best, time.perf_counter() - start)
    return best / boxes * 1e6, placed


def run_georef_bench(frames: int = 40, rounds: int = 3, seed: int = 0) -> dict[str, Any]:
    """Microseconds per detection and the ratio to the flat plane, best of ``rounds``."""
    near, far = _frames(frames, seed, False), _frames(frames, seed + 1, True)
    rows: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="ibet-bench-georef-") as tmp:
        dems = {"dem 5 m": _dem(Path(tmp), 5.0), "dem 1 m": _dem(Path(tmp), 1.0, half_m=1500.0)}
        flat_us, _ = _time_per_detection(near, None, rounds)
        rows["flat plane (baseline)"] = (flat_us, 1.0)
        far_us, _ = _time_per_detection(far, None, rounds)
        rows["ellipsoid, 2-20 km rays"] = (far_us, far_us / flat_us)
        for name, dem in dems.items():
            us, _ = _time_per_detection(near, dem, rounds)
            rows[name] = (us, us / flat_us)
    return {"detections_near": sum(len(b) for b, _ in near), "detections_far": sum(len(b) for b, _ in far),
            "us_per_detection": {k: round(v[0], 1) for k, v in rows.items()},
            "ratio_to_flat": {k: round(v[1], 2) for k, v in rows.items()}}
