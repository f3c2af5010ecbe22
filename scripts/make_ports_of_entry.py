"""Draw the ports of entry in ``config/ports_of_entry.geojson`` against the shipped border line.

How to run (from the repository root, after ``scripts/extract_border.py`` or whenever the border
line is replaced)::

    .venv/bin/python scripts/make_ports_of_entry.py [--border PATH] [--out PATH]

The shipped 1:10m line can be hundreds of metres off the surveyed boundary, so a port is not a
circle around its real location: for each crossing in ``PORTS`` (its real location on the road,
from the published coordinates of the crossing or bridge, mostly the Wikipedia infoboxes; those
marked *approx.* were placed by hand), the script finds the nearest point of the shipped line
(``ibet.border.nearest_on_border``, in metres) and writes the convex hull of a ``SNAP_RADIUS_M``
disc around that point and a ``REAL_RADIUS_M`` disc around the real location, computed in a local
azimuthal equidistant plane (pyproj) and written back in WGS-84 lon/lat. ``snap_distance_m`` says
how far the real crossing is from the shipped line. Inside that area, one lane per mode
(``LANE_WIDTH_M`` wide, ``LANE_HALF_LENGTH_M`` into each country) crosses the shipped line square
at its point nearest the real crossing (or ``lanes_at``): only a crossing through a lane of the
track's mode is lawful. Hours and their time zone come from ``hours`` and ``ZONE_OF_STATE``.

Operators may edit the output by hand (add a port, widen a polygon); ``ibet.border.
load_ports_of_entry`` validates it. Rerunning this script overwrites it from ``PORTS``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np
import shapely
from shapely.geometry import mapping

from ibet.border import (
    OpeningHours,
    PortLane,
    PortOfEntry,
    lane_across_line,
    load_border,
    load_ports_of_entry,
    local_metres,
    nearest_on_border,
)

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "config" / "ports_of_entry.geojson"
SNAP_RADIUS_M = 500.0
REAL_RADIUS_M = 300.0


class Port(NamedTuple):
    slug: str
    name: str
    us_port: str
    ca_port: str
    crossing: str
    lat_deg: float
    lon_deg: float
    sector_id: str | None
    modes: tuple[str, ...] = ("road",)
    lanes_at: tuple[float, float] | None = None  # (lat, lon) where the lanes meet the shipped line, if not nearest
    hours: str = "24/7"


#: Lane width per mode (m): a highway's lanes and booths' approach, a rail line's right of way, a
#: bridge's sidewalk with its road (pedestrians at the shipped bridge ports walk the bridge), a
#: ferry's channel. Each lane runs ``LANE_HALF_LENGTH_M`` into each country.
LANE_WIDTH_M = {"road": 30.0, "rail": 15.0, "pedestrian": 30.0, "ferry": 80.0}
LANE_HALF_LENGTH_M = 300.0

#: The time zone each port's hours are published in (its US side; both sides' hours agree for the
#: shipped ports). Hours: CBP's and CBSA's published hours (cbp.gov port pages, the CBSA's
#: "Border wait times and hours" list), as of 2026; all shipped ports are open around the clock
#: except Lynden - Aldergrove (8 am to midnight).
ZONE_OF_STATE = {"AK": "America/Anchorage", "WA": "America/Los_Angeles", "MT": "America/Denver",
                 "ND": "America/Chicago", "MN": "America/Chicago", "MI": "America/Detroit",
                 "NY": "America/New_York", "VT": "America/New_York", "ME": "America/New_York"}
HOURS_SOURCE = "CBP and CBSA published port hours (2026)"


# West to east. Locations: where the road or bridge crosses the boundary (bridges: mid-span).
PORTS = (
    Port("alcan-beaver-creek", "Alcan - Beaver Creek", "Alcan, AK", "Beaver Creek, YT",
         "Alaska Highway (AK 2 / Yukon Highway 1)", 62.615310, -141.001443, None),
    # the shipped line ends 255 m east of I-5: the lanes are where the demo's road meets its end
    Port("peace-arch", "Peace Arch", "Blaine (Peace Arch), WA", "Douglas (Surrey), BC",
         "I-5 / BC Highway 99", 49.00220, -122.75650, "pac-blaine", lanes_at=(48.9925, -122.749595)),
    Port("pacific-highway", "Pacific Highway", "Blaine (Pacific Highway), WA", "Pacific Highway (Surrey), BC",
         "SR 543 / BC Highway 15 (176th Street)", 49.00200, -122.73500, "pac-blaine"),
    Port("lynden-aldergrove", "Lynden - Aldergrove", "Lynden, WA", "Aldergrove (Langley), BC",
         "SR 539 (Guide Meridian) / BC Highway 13 (264th Street)", 49.002270, -122.484984, None,
         hours="08:00-24:00"),
    Port("sumas-huntingdon", "Sumas - Huntingdon", "Sumas, WA", "Huntingdon (Abbotsford), BC",
         "SR 9 / BC Highway 11", 49.002411, -122.265511, None),
    Port("sweetgrass-coutts", "Sweetgrass - Coutts", "Sweetgrass, MT", "Coutts, AB",
         "I-15 / Alberta Highway 4", 48.998393, -111.960447, "prairie-sweetgrass"),
    Port("portal-north-portal", "Portal - North Portal", "Portal, ND", "North Portal, SK",
         "US 52 / Saskatchewan Highway 39", 48.998946, -102.552129, None),
    Port("pembina-emerson", "Pembina - Emerson", "Pembina, ND", "Emerson, MB",
         "I-29 / PTH 75", 49.000477, -97.237634, "prairie-emerson"),
    Port("international-falls-fort-frances", "International Falls - Fort Frances", "International Falls, MN",
         "Fort Frances, ON", "Fort Frances - International Falls International Bridge (US 53/71 / Highway 11)",
         48.6072, -93.4019, None, ("road", "rail")),
    Port("sault-ste-marie", "Sault Ste. Marie International Bridge", "Sault Ste. Marie, MI", "Sault Ste. Marie, ON",
         "International Bridge (I-75 / Highway 17)", 46.50703, -84.36132, None),
    Port("blue-water-bridge", "Blue Water Bridge", "Port Huron, MI", "Sarnia (Point Edward), ON",
         "Blue Water Bridge (I-94/I-69 / Highway 402)", 42.99867, -82.42333, None),
    Port("ambassador-bridge", "Ambassador Bridge", "Detroit (Ambassador Bridge), MI", "Windsor (Ambassador Bridge), ON",
         "Ambassador Bridge", 42.3120, -83.0740, "gl-detroit"),
    Port("detroit-windsor-tunnel", "Detroit - Windsor Tunnel", "Detroit (Tunnel), MI", "Windsor (Tunnel), ON",
         "Detroit-Windsor Tunnel (approx. mid-river)", 42.3245, -83.0405, "gl-detroit"),
    Port("peace-bridge", "Peace Bridge", "Buffalo, NY", "Fort Erie, ON",
         "Peace Bridge (I-190 / Queen Elizabeth Way)", 42.90694, -78.90556, None, ("road", "pedestrian")),
    Port("rainbow-bridge", "Rainbow Bridge", "Niagara Falls (Rainbow Bridge), NY", "Niagara Falls (Rainbow Bridge), ON",
         "Rainbow Bridge", 43.0902, -79.0677, None, ("road", "pedestrian")),
    Port("lewiston-queenston", "Lewiston - Queenston Bridge", "Lewiston, NY", "Queenston (Niagara-on-the-Lake), ON",
         "Lewiston-Queenston Bridge (I-190 / Highway 405)", 43.15306, -79.04445, None),
    Port("champlain-lacolle", "Champlain - Lacolle", "Champlain, NY", "Saint-Bernard-de-Lacolle, QC",
         "I-87 / Autoroute 15", 45.008825, -73.452358, "qc-champlain"),
    Port("highgate-springs-st-armand", "Highgate Springs - St-Armand/Philipsburg", "Highgate Springs, VT",
         "Saint-Armand (Philipsburg), QC", "I-89 / Route 133", 45.015484, -73.084606, None),
    Port("derby-line-stanstead", "Derby Line - Stanstead (I-91)", "Derby Line (I-91), VT", "Stanstead (Autoroute 55), QC",
         "I-91 / Autoroute 55", 45.005859, -72.087961, "qc-derby"),
    Port("houlton-woodstock", "Houlton - Woodstock", "Houlton, ME", "Woodstock (Belleville), NB",
         "I-95 / NB Route 95 (approx. location)", 46.1403, -67.7817, None),
    Port("calais-st-stephen", "Calais - St. Stephen (Ferry Point)", "Calais (Ferry Point), ME", "St. Stephen, NB",
         "Ferry Point International Bridge (SR 9 / Route 170)", 45.191667, -67.283389, None),
)


def port_polygon(lon: float, lat: float, snapped_lon: float, snapped_lat: float) -> shapely.Polygon:
    """Convex hull of a disc around the snapped point and one around the real location, in lon/lat."""
    to_m, to_deg = local_metres(lon, lat)
    sx, sy = to_m.transform(snapped_lon, snapped_lat)
    discs = shapely.union(shapely.Point(sx, sy).buffer(SNAP_RADIUS_M, quad_segs=8),
                          shapely.Point(0.0, 0.0).buffer(REAL_RADIUS_M, quad_segs=8))
    hull = shapely.convex_hull(discs)
    return shapely.set_precision(shapely.transform(hull, lambda xy: np.column_stack(to_deg.transform(*xy.T))), 1e-6)


def _rounded(value):
    if isinstance(value, float):
        return round(value, 6) + 0.0
    if isinstance(value, (list, tuple)):
        return [_rounded(v) for v in value]
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--border", type=Path, default=None, help="border line file (default: the shipped one)")
    parser.add_argument("--out", type=Path, default=OUT, help="output GeoJSON (default: %(default)s)")
    args = parser.parse_args(argv)
    border = load_border(args.border)

    features = []
    for p in PORTS:
        snapped_lon, snapped_lat, distance_m = nearest_on_border(border, p.lon_deg, p.lat_deg)
        polygon = port_polygon(p.lon_deg, p.lat_deg, snapped_lon, snapped_lat)
        lane_lat, lane_lon = p.lanes_at or (p.lat_deg, p.lon_deg)
        lanes = [PortLane(mode=mode, name=f"{p.crossing} {mode} lanes",
                          polygon=lane_across_line(border, lane_lon, lane_lat, LANE_WIDTH_M[mode], LANE_HALF_LENGTH_M))
                 for mode in p.modes]
        hours = OpeningHours(daily=p.hours, time_zone=ZONE_OF_STATE[p.us_port.rsplit(", ", 1)[1]], source=HOURS_SOURCE)
        port = PortOfEntry(id=f"poe-{p.slug}", name=p.name, us_port=p.us_port, ca_port=p.ca_port,
                           crossing=p.crossing, sector_id=p.sector_id, modes=p.modes, lon_deg=p.lon_deg,
                           lat_deg=p.lat_deg, snap_distance_m=round(distance_m, 1), lanes=tuple(lanes),
                           hours=hours, polygon=polygon)
        if not all(polygon.contains(lane.polygon) for lane in lanes):
            raise SystemExit(f"{port.id}: a lane reaches outside the port's area; widen SNAP_RADIUS_M")
        props = port.model_dump(exclude={"polygon"}, mode="json")
        features.append({"type": "Feature", "properties": _rounded(props), "geometry": _rounded(mapping(polygon))})
        print(f"{port.id:40s} snap {distance_m:7.1f} m  sector {p.sector_id or '-'}")

    body = ",\n".join(json.dumps(f, separators=(",", ":"), ensure_ascii=False) for f in features)
    args.out.write_text('{"type":"FeatureCollection","features":[\n' + body + "\n]}\n", encoding="utf-8")
    ports = load_ports_of_entry(args.out, border=border)  # the file we wrote must load and touch the line
    overlapping = [(a.id, b.id) for i, a in enumerate(ports) for b in ports[i + 1:] if a.polygon.intersects(b.polygon)]
    if overlapping:
        raise SystemExit(f"port polygons overlap: {overlapping}")
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes, {len(ports)} ports)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
