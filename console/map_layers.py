"""The static layers of the operator map as GeoJSON, built once at start-up from the project's own
data: the border line (:func:`ibet.border.load_border`), the ports of entry, each sector's watched
area and the fixed cameras. No tile server: the map draws only these and the live layers.

A sector has no drawn outline in the registry, so its area is derived: the convex hull of its fixed
cameras (pose or ground control points) and its ports of entry, widened by ``SECTOR_MARGIN_DEG``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import shapely
from shapely.geometry import mapping

from ibet.border import BorderGeometry, PortOfEntry
from ibet.registry import Registry

SECTOR_MARGIN_DEG = 0.03  # about 2-3 km at the border's latitudes


def _feature(geometry: Any, **properties: Any) -> dict[str, Any]:
    return {"type": "Feature", "geometry": mapping(geometry), "properties": properties}


def _collection(features: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": features}


def border_layer(border: BorderGeometry) -> dict[str, Any]:
    """The border line, one feature per part, with its source for the map's attribution."""
    return _collection([_feature(part, source=border.source) for part in shapely.get_parts(border.lines)])


def ports_layer(ports: Sequence[PortOfEntry]) -> dict[str, Any]:
    """The ports of entry's areas with their names and sector (only their lanes are lawful: see lanes_layer)."""
    return _collection([_feature(p.polygon, id=p.id, name=p.name, sector_id=p.sector_id, crossing=p.crossing)
                        for p in ports])


def lanes_layer(ports: Sequence[PortOfEntry]) -> dict[str, Any]:
    """Each port's lanes (where crossing is lawful for their mode), with the port and its hours."""
    return _collection([_feature(lane.polygon, port_id=p.id, name=f"{p.name}: {lane.mode} lanes", mode=lane.mode,
                                 hours=p.hours.daily, time_zone=p.hours.time_zone)
                        for p in ports for lane in p.lanes])


def sensors_layer(registry: Registry) -> dict[str, Any]:
    """Fixed cameras at their surveyed position (drones report theirs in telemetry, not shown here)."""
    features = []
    for sensor in registry.sensors:
        point = _sensor_point(sensor)
        if point is not None:
            features.append(_feature(point, id=sensor.id, kind=sensor.kind, sector_id=sensor.sector_id))
    return _collection(features)


def _sensor_point(sensor) -> shapely.Point | None:
    if sensor.pose is not None:
        return shapely.Point(sensor.pose.lon_deg, sensor.pose.lat_deg)
    if sensor.ground_control_points:
        return shapely.MultiPoint([(g.lon_deg, g.lat_deg) for g in sensor.ground_control_points]).centroid
    return None


def sectors_layer(registry: Registry, ports: Sequence[PortOfEntry]) -> dict[str, Any]:
    """Each sector's derived watch area (see the module docstring), for sectors with anything placed."""
    features = []
    for sector in registry.sectors:
        points = [p for p in (_sensor_point(s) for s in registry.sensors_in(sector.id)) if p is not None]
        points += [p.polygon.centroid for p in ports if p.sector_id == sector.id]
        if points:
            area = shapely.MultiPoint(points).convex_hull.buffer(SECTOR_MARGIN_DEG)
            features.append(_feature(area, id=sector.id, name=sector.name, timezone=sector.timezone))
    return _collection(features)


def map_layers(border: BorderGeometry | None, ports: Sequence[PortOfEntry], registry: Registry | None) -> dict[str, Any]:
    """Every static layer the operator map draws, keyed by layer name."""
    empty = _collection([])
    return {
        "border": border_layer(border) if border is not None else empty,
        "ports": ports_layer(ports),
        "lanes": lanes_layer(ports),
        "sectors": sectors_layer(registry, ports) if registry is not None else empty,
        "sensors": sensors_layer(registry) if registry is not None else empty,
    }
