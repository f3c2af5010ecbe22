"""``ibet border import FILE``: take an agency's boundary file (the International Boundary
Commission's line as Shapefile, GeoPackage or GeoJSON, any CRS), check it, and record it.

Checks beyond :func:`ibet.border.load_border`'s (readable, line geometry, valid, lon/lat after
reprojection): no two features overlap (a duplicated segment), no gap between pieces (two ends
closer than :data:`GAP_M` that do not meet), a version and a horizontal accuracy (from the file's
properties or the options). The line is written beside the registry as GeoJSON in EPSG:4326 with
its version, accuracy, source and the original's sha256, and ``border_path`` in the config file
(edited with ruamel.yaml, comments kept) points at it.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely
from pyproj import Geod

from ibet.border import BorderDataError, load_border

GAP_M = 100.0  # ends of two pieces this close that do not meet: a gap, not a lake or another coast
OVERLAP_M = 1.0
_GEOD = Geod(ellps="WGS84")


@dataclass(frozen=True)
class Imported:
    path: Path
    version: str
    accuracy_m: float
    length_km: float
    pieces: int
    off_shipped_max_m: float  # how far the imported line gets from the shipped line (sides still come from it)


def _metres(lon0: float, lat0: float, lon1: float, lat1: float) -> float:
    return float(_GEOD.inv(lon0, lat0, lon1, lat1)[2])


def check_line_file(path: Path) -> gpd.GeoDataFrame:
    """The file's features in EPSG:4326 after every check; BorderDataError listing each problem."""
    load_border(path)  # geometry type, validity, CRS, readability: named per feature
    frame = gpd.read_file(path, engine="pyogrio")
    frame = frame.to_crs(4326) if frame.crs is not None and frame.crs.to_epsg() != 4326 else frame
    geoms = list(frame.geometry)
    problems = []
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="intersects")
    for i, j in zip(left, right, strict=True):
        if i >= j:
            continue
        shared = shapely.intersection(geoms[i], geoms[j])
        parts = [g for g in shapely.get_parts(shared) if g.geom_type in ("LineString", "MultiLineString")]
        if parts:
            coords = np.concatenate([np.asarray(p.coords) for p in parts])
            length = sum(_metres(*a, *b) for a, b in zip(coords[:-1], coords[1:], strict=True))
            if length >= OVERLAP_M:
                lon, lat = coords[0]
                problems.append(f"{path}: features[{i}] and features[{j}] share {length:.0f} m of line from "
                                f"{lat:.6f}, {lon:.6f} (a duplicated segment)")
    merged = shapely.line_merge(shapely.union_all(geoms))
    pieces = list(shapely.get_parts(merged))
    ends = [(k, np.asarray(p.coords)[e]) for k, p in enumerate(pieces) for e in (0, -1)]
    for a in range(len(ends)):
        for b in range(a + 1, len(ends)):
            (ka, pa), (kb, pb) = ends[a], ends[b]
            if ka == kb:
                continue
            gap = _metres(pa[0], pa[1], pb[0], pb[1])
            if 0.01 < gap < GAP_M:
                problems.append(f"{path}: a gap of {gap:.1f} m in the line at {pa[1]:.6f}, {pa[0]:.6f} "
                                f"(two pieces end there without meeting)")
    if problems:
        raise BorderDataError("\n".join(problems))
    return frame


def import_border(source: Path, config_file: Path, *, version: str | None, accuracy_m: float | None) -> Imported:
    """Check ``source``, write it beside the config's registry and point ``border_path`` at it."""
    from ruamel.yaml import YAML

    frame = check_line_file(source)
    version = version or _property(frame, "version")
    if accuracy_m is None and "accuracy_m" in frame.columns:
        given = [float(v) for v in frame["accuracy_m"] if v is not None and not (isinstance(v, float) and math.isnan(v))]
        accuracy_m = max(given) if given else None  # the worst of the features
    if not version:
        raise BorderDataError(f"{source}: no version: give --version (e.g. the IBC's release)")
    if accuracy_m is None or not (math.isfinite(accuracy_m) and 0 <= accuracy_m <= 100_000):
        raise BorderDataError(f"{source}: no horizontal accuracy in metres: give --accuracy-m (0..100000)")
    digest = hashlib.sha256(source.read_bytes()).hexdigest() if source.is_file() else ""
    features = [{"type": "Feature", "geometry": shapely.geometry.mapping(g),
                 "properties": {"version": version, "accuracy_m": accuracy_m, "source": f"{source.name} (imported)",
                                "original_sha256": digest}} for g in frame.geometry]
    target = config_file.parent / "boundary.geojson"
    target.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    loaded = load_border(target)  # what ibet will load from now on
    yaml = YAML()
    yaml.preserve_quotes = True
    data = yaml.load(config_file.read_text(encoding="utf-8")) if config_file.exists() else {}
    data["border_path"] = target.name
    with config_file.open("w", encoding="utf-8") as f:
        yaml.dump(data, f)
    shipped = load_border()
    vertices = shapely.get_coordinates(loaded.lines)
    nearest = shapely.shortest_line(shapely.points(vertices), shipped.lines)
    offsets = [_metres(*np.asarray(line.coords)[0], *np.asarray(line.coords)[1]) for line in nearest[::max(1, len(nearest) // 2000)]]
    length = sum(_GEOD.geometry_length(p) for p in shapely.get_parts(loaded.lines)) / 1000
    return Imported(target, version, accuracy_m, round(length, 1), len(shapely.get_parts(loaded.lines)),
                    round(max(offsets), 1))


def _property(frame: gpd.GeoDataFrame, name: str):
    if name not in frame.columns:
        return None
    values = {v for v in frame[name] if v is not None and not (isinstance(v, float) and math.isnan(v))}
    return sorted(values, key=str)[-1] if values else None
