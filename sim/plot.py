"""``ibet sim plot``: a picture of a scenario: border, countries, ports of entry, ground, sensor
footprints, target paths and the true events, in metres around the scenario origin."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import shapely  # noqa: E402
from shapely.geometry.base import BaseGeometry  # noqa: E402

from sim.run import Simulation  # noqa: E402

_EVENT_STYLE = {"crossing": ("X", "red"), "lawful_crossing": ("P", "green"), "approach": ("o", "orange")}


def _fill(ax, geom: BaseGeometry | None, **style) -> None:
    if geom is None or geom.is_empty:
        return
    for poly in shapely.get_parts(geom):
        if poly.geom_type == "Polygon":
            ax.fill(*poly.exterior.xy, **style)


def _lines(ax, geom: BaseGeometry | None, **style) -> None:
    if geom is None or geom.is_empty:
        return
    for line in shapely.get_parts(geom):
        if line.geom_type in ("LineString", "LinearRing"):
            ax.plot(*line.xy, **style)
            style.pop("label", None)


def plot_scenario(sim: Simulation, out: Path, overlay: Callable[[Any, Simulation], None] | None = None,
                  title: str | None = None) -> Path:
    """Draw ``sim`` to the PNG file ``out`` and return its path; ``overlay(ax, sim)`` draws more on top
    (in the scenario's local metres, ``sim.world.frame.to_local``), e.g. a pipeline run's tracks."""
    world, scenario = sim.world, sim.scenario
    area = world.area_local
    fig, ax = plt.subplots(figsize=(10, 10), dpi=110)
    to_local = world.frame.geometry_to_local
    canada = to_local(world.border.canada.intersection(world.frame.geometry_to_wgs84(area.buffer(200))))
    usa = to_local(world.border.usa.intersection(world.frame.geometry_to_wgs84(area.buffer(200))))
    _fill(ax, canada.intersection(area), color="#f4dede", zorder=0)
    _fill(ax, usa.intersection(area), color="#dee6f4", zorder=0)
    _fill(ax, world.ground.forest.intersection(area) if world.ground.forest else None, color="#2f6b3a", alpha=0.35, lw=0)
    _fill(ax, world.ground.water.intersection(area) if world.ground.water else None, color="#4a78a8", alpha=0.6, lw=0)
    for road, width in world.ground.roads:
        _fill(ax, road.buffer(width / 2).intersection(area), color="#777777", lw=0)
    _fill(ax, world.border_local.buffer(world.ground.vista_half_width_m).intersection(area), color="#c8b27a", lw=0)
    for port in world.ports:
        _fill(ax, to_local(port.polygon).intersection(area), color="#2ca02c", alpha=0.3, lw=0)
    _lines(ax, world.border_local.intersection(area), color="black", lw=1.5, label="border (Natural Earth 1:10m)")

    first = {}
    for capture in sim.captures():
        if capture.sensor_id not in first or capture.true_time_s - first[capture.sensor_id] >= scenario.duration_s / 4:
            first[capture.sensor_id] = capture.true_time_s
            poly = capture.camera.footprint(max_range_m=area.bounds[2] * 2)
            ax.fill(poly[:, 0], poly[:, 1], fill=False, ec="purple", lw=0.8, ls="--")
            ax.plot(*capture.camera.position_m[:2], "^", color="purple", ms=8)
            ax.annotate(capture.sensor_id, capture.camera.position_m[:2], fontsize=7, color="purple")
    for target in sim.targets:
        pts = target.motion.points_m
        ax.plot(pts[:, 0], pts[:, 1], "-", lw=1.5, label=f"target {target.spec.id} ({target.spec.kind})")
        ax.annotate("", pts[-1], pts[-2], arrowprops={"arrowstyle": "->", "lw": 1.5})
    for event in sim.events:
        marker, colour = _EVENT_STYLE[event.kind]
        ax.plot(event.east_m, event.north_m, marker, color=colour, ms=12,
                label=f"{event.kind} t={event.time_s:.1f}s {event.direction}")
    half = scenario.map.half_size_m
    ax.set(xlim=(-half, half), ylim=(-half, half), aspect="equal", xlabel="east of origin (m)",
           ylabel="north of origin (m)")
    lat, lon = world.frame.origin_lat_deg, world.frame.origin_lon_deg
    ax.set_title(f"{scenario.name} (sector {scenario.sector_id}, seed {sim.seed})\norigin {lat:.5f}, {lon:.5f}; "
                 "pink: Canada, blue: US, green: ports of entry, dashed: sensor footprints", fontsize=9)
    if overlay is not None:
        overlay(ax, sim)
    if title is not None:
        ax.set_title(title, fontsize=9)
    ax.legend(loc="lower left", fontsize=7)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def sample_frames_sheet(sim: Simulation, out: Path, per_sensor: int = 2) -> Path:
    """A contact sheet of a few rendered frames per sensor with their truth boxes."""
    import cv2

    def fully_seen_area(frame) -> float:
        boxes = [b.xyxy_px for b in frame.truth_boxes if b.visible_fraction == 1.0]
        return max(((x2 - x1) * (y2 - y1) for x1, y1, x2, y2 in boxes), default=0.0)

    best: dict[str, list] = {}
    for frame in sim.frames(every_nth=3):  # keep the frames showing a whole target largest
        if fully_seen_area(frame) > 0:
            chosen = best.setdefault(frame.meta.sensor_id, [])
            chosen.append(frame)
            chosen.sort(key=fully_seen_area, reverse=True)
            del chosen[per_sensor:]
    picked = {sensor: sorted(frames, key=lambda f: f.meta.sequence) for sensor, frames in best.items()}
    tiles = []
    for frames in picked.values():
        for frame in frames:
            image = cv2.imdecode(np.frombuffer(frame.jpeg, np.uint8), cv2.IMREAD_COLOR)
            for box in frame.truth_boxes:
                x1, y1, x2, y2 = (int(round(v)) for v in box.xyxy_px)
                cv2.rectangle(image, (x1, y1), (x2, y2), (0, 0, 255), 1)
            cv2.putText(image, f"{frame.meta.sensor_id} #{frame.meta.sequence}", (8, 22), cv2.FONT_HERSHEY_SIMPLEX,
                        0.6, (255, 255, 255), 2)
            tiles.append(cv2.resize(image, (640, int(640 * image.shape[0] / image.shape[1]))))
    if not tiles:
        raise ValueError(f"no frame of {sim.scenario.name} shows a target")
    width = max(t.shape[1] for t in tiles)
    sheet = np.vstack([np.pad(t, ((0, 4), (0, width - t.shape[1]), (0, 0))) for t in tiles])
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), sheet)
    return out
