"""The scenario's local frame: WGS-84 lat/lon <-> east/north metres around the scenario origin.

A transverse Mercator projection centred on the origin (scale 1 there): over the few kilometres
of a scenario it is the local ENU ground plane to well under a millimetre per metre.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry.base import BaseGeometry


@dataclass(frozen=True)
class LocalFrame:
    """East/north metres around (``origin_lat_deg``, ``origin_lon_deg``); up is height above ground."""

    origin_lat_deg: float
    origin_lon_deg: float
    _forward: Transformer = field(init=False, repr=False, compare=False)
    _inverse: Transformer = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        proj = (f"+proj=tmerc +lat_0={self.origin_lat_deg} +lon_0={self.origin_lon_deg} +k=1 "
                "+x_0=0 +y_0=0 +ellps=WGS84 +units=m +no_defs")
        object.__setattr__(self, "_forward", Transformer.from_crs("EPSG:4326", proj, always_xy=True))
        object.__setattr__(self, "_inverse", Transformer.from_crs(proj, "EPSG:4326", always_xy=True))

    def to_local(self, lon_deg: np.ndarray | float, lat_deg: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """(east_m, north_m) of WGS-84 points."""
        e, n = self._forward.transform(np.asarray(lon_deg, dtype=float), np.asarray(lat_deg, dtype=float))
        return np.asarray(e), np.asarray(n)

    def to_wgs84(self, east_m: np.ndarray | float, north_m: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """(lon_deg, lat_deg) of local points."""
        lon, lat = self._inverse.transform(np.asarray(east_m, dtype=float), np.asarray(north_m, dtype=float))
        return np.asarray(lon), np.asarray(lat)

    def geometry_to_local(self, geom: BaseGeometry) -> BaseGeometry:
        """A lon/lat shapely geometry in local metres."""
        return shapely.transform(geom, lambda xy: np.column_stack(self.to_local(xy[:, 0], xy[:, 1])))

    def geometry_to_wgs84(self, geom: BaseGeometry) -> BaseGeometry:
        """A local-metre shapely geometry in lon/lat."""
        return shapely.transform(geom, lambda xy: np.column_stack(self.to_wgs84(xy[:, 0], xy[:, 1])))
