"""Procedural ground colour as a pure function of ENU position.

What covers a point (``ground_kind``: field, forest, water, border vista, road, painted line,
monument) comes from the world's cached area raster (``sim.world_map.ground_raster``) and exact
distances to the border and road lines; its colour is that kind's palette modulated by value
noise and a tree-crown tile sampled at world coordinates with ``world.texture_seed``. No
per-frame randomness: one ground point has the same colour in every camera and frame.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
import shapely

from sim.world_map import KIND_BITS, NEAR_EDGE, NEAR_LINE, GroundKind, GroundRaster, WorldMap, ground_raster

_NOISE_SIZE = 512  # value-noise lattice period, in wavelengths
_REMAP_COLS = 1024  # cv2.remap needs both map dimensions below 32767
_MONUMENT_HALF_M = 0.5
_ASPHALT_MIN_WIDTH_M = 5.0
_EDGE_LINE_INSET_M = 0.3
_EDGE_LINE_WIDTH_M = 0.2
_CROWN_TEXEL_M = 0.25
_CROWN_GAP = 0.22  # crown-tile brightness between crowns; lit crowns are >= 0.3
_CROWN_GAP_MAX = 0.27
_CROWN_TILE = 1024  # texels; the crown pattern repeats every 256 m (hidden by large-scale variation)


def _segments(geometry, e: np.ndarray, n: np.ndarray, margin_m: float) -> np.ndarray:
    """Segments (s, 2, 2) of a line geometry within the points' bounding box plus ``margin_m``."""
    clipped = shapely.clip_by_rect(geometry, e.min() - margin_m, n.min() - margin_m, e.max() + margin_m, n.max() + margin_m)
    segments = [np.empty((0, 2, 2))]
    for line in shapely.get_parts(clipped):
        xy = shapely.get_coordinates(line)
        segments.append(np.stack((xy[:-1], xy[1:]), axis=1))
    return np.concatenate(segments)


def _distance_m(geometry, e: np.ndarray, n: np.ndarray, margin_m: float) -> np.ndarray:
    """Distance (n,) in metres from points to a line geometry (inf beyond ``margin_m``)."""
    segments = _segments(geometry, e, n, margin_m)
    best = np.full(len(e), np.inf)
    if not len(segments):
        return best
    a, ab = segments[:, 0], segments[:, 1] - segments[:, 0]
    length2 = np.maximum((ab**2).sum(axis=1), 1e-12)
    step = max(1, 2_000_000 // len(segments))
    for i in range(0, len(e), step):
        pe, pn = e[i : i + step, None] - a[:, 0], n[i : i + step, None] - a[:, 1]
        t = np.clip((pe * ab[:, 0] + pn * ab[:, 1]) / length2, 0.0, 1.0)
        best[i : i + step] = np.sqrt(((pe - t * ab[:, 0]) ** 2 + (pn - t * ab[:, 1]) ** 2).min(axis=1))
    return best


def _line_kinds(world: WorldMap, raster: GroundRaster, e: np.ndarray, n: np.ndarray, kinds: np.ndarray, fp) -> None:
    """Overwrite ``kinds`` near the lines: the vista (on land), monuments, then roads in order."""
    land = kinds != GroundKind.WATER
    vista = land & (_distance_m(world.border, e, n, world.vista_half_width_m + 1.0) <= world.vista_half_width_m)
    kinds[vista] = GroundKind.VISTA
    monuments = raster.monuments_m
    lo, hi = np.array([e.min(), n.min()]) - 1.0, np.array([e.max(), n.max()]) + 1.0
    for me, mn in monuments[((monuments >= lo) & (monuments <= hi)).all(axis=1)]:
        kinds[vista & (np.abs(e - me) <= _MONUMENT_HALF_M) & (np.abs(n - mn) <= _MONUMENT_HALF_M)] = GroundKind.MONUMENT
    for line, width_m in world.roads:
        from_edge = width_m / 2.0 - _distance_m(line, e, n, width_m / 2.0 + 1.0)
        if width_m >= _ASPHALT_MIN_WIDTH_M:
            kinds[from_edge >= 0.0] = GroundKind.ASPHALT
            line_m = _EDGE_LINE_WIDTH_M if fp is None else np.maximum(_EDGE_LINE_WIDTH_M, fp)  # no gaps when far
            kinds[(from_edge >= _EDGE_LINE_INSET_M) & (from_edge < _EDGE_LINE_INSET_M + line_m)] = GroundKind.ROAD_LINE
        else:
            kinds[from_edge >= 0.0] = GroundKind.GRAVEL


def ground_kind(world: WorldMap, e: np.ndarray, n: np.ndarray, footprint_m: np.ndarray | None = None) -> np.ndarray:
    """Ground kinds (n,) uint8 (``GroundKind`` values) at ENU points e (n,), n (n,) in metres.

    Forest and water edges are warped by noise and forest edges follow the tree crowns, so they
    do not show the raster's cells; roads, the vista and monuments have exact edges. With
    ``footprint_m`` (n,) painted road lines are at least a pixel wide, so they do not break up.
    """
    e = np.asarray(e, dtype=np.float64).reshape(-1)
    n = np.asarray(n, dtype=np.float64).reshape(-1)
    raster, seed = ground_raster(world), world.texture_seed
    raw = raster.lookup(e, n)
    kinds = raw & np.uint8(KIND_BITS)
    edge = np.flatnonzero(raw & NEAR_EDGE)
    if len(edge):
        ee, ne = e[edge], n[edge]
        warp_e = 2.4 * (_noise(ee, ne, 7.0, 20, seed, None) - 0.5) + 0.8 * (_noise(ee, ne, 2.5, 21, seed, None) - 0.5)
        warp_n = 2.4 * (_noise(ee, ne, 7.0, 22, seed, None) - 0.5) + 0.8 * (_noise(ee, ne, 2.5, 23, seed, None) - 0.5)
        sub = raster.lookup(ee + warp_e, ne + warp_n) & np.uint8(KIND_BITS)
        forest = np.flatnonzero(sub == GroundKind.FOREST)
        gaps = _crowns(ee[forest], ne[forest], seed)[:, 0] < _CROWN_GAP_MAX  # the forest's edge follows its crowns
        sub[forest[gaps]] = GroundKind.FIELD
        kinds[edge] = sub
    near = np.flatnonzero(raw & NEAR_LINE)
    if len(near):
        sub = kinds[near]
        _line_kinds(world, raster, e[near], n[near], sub, None if footprint_m is None else np.asarray(footprint_m)[near])
        kinds[near] = sub
    return kinds


def _remap(table: np.ndarray, x: np.ndarray, y: np.ndarray, interpolation: int) -> np.ndarray:
    """Sample a periodic table at float32 texel coordinates x (n,), y (n,); returns (n, ...) float32."""
    count = len(x)
    pad = (-count) % _REMAP_COLS
    x = np.pad(x, (0, pad)).reshape(-1, _REMAP_COLS)
    y = np.pad(y, (0, pad)).reshape(-1, _REMAP_COLS)
    chunks = [
        cv2.remap(table, x[i : i + 16384], y[i : i + 16384], interpolation, borderMode=cv2.BORDER_WRAP)
        for i in range(0, len(x), 16384)
    ]
    rows = np.concatenate(chunks) if chunks else np.empty((0, _REMAP_COLS, *table.shape[2:]), np.float32)
    return rows.reshape(-1, *table.shape[2:])[:count]


@lru_cache(maxsize=64)
def _lattice(seed: int, salt: int) -> np.ndarray:
    return np.random.default_rng([seed & 0xFFFFFFFF, salt]).random((_NOISE_SIZE, _NOISE_SIZE), dtype=np.float32)


def _noise(e: np.ndarray, n: np.ndarray, wavelength_m: float, salt: int, seed: int, footprint_m: np.ndarray | None) -> np.ndarray:
    """Value noise in about [0, 1] with features of ``wavelength_m`` (bicubic on a seeded lattice).

    Where a pixel's ground footprint is close to or larger than the wavelength the noise fades to
    its mean 0.5, which is what a camera sees when it averages the detail over the pixel.
    """
    angle = 2.399963 * salt  # a different lattice orientation per layer hides the grid
    c, s = np.cos(angle), np.sin(angle)
    x = np.mod((c * e - s * n) / wavelength_m, _NOISE_SIZE).astype(np.float32)
    y = np.mod((s * e + c * n) / wavelength_m, _NOISE_SIZE).astype(np.float32)
    value = _remap(_lattice(seed, salt), x, y, cv2.INTER_CUBIC).reshape(-1)
    if footprint_m is not None:
        weight = np.clip((wavelength_m / np.maximum(footprint_m, 1e-6) - 1.5) / 1.5, 0.0, 1.0)
        value = 0.5 + (value - 0.5) * weight
    return value


def _smoothstep(lo: float, hi: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _mix(a: tuple[float, float, float], b: tuple[float, float, float], t: np.ndarray) -> np.ndarray:
    a_, b_ = np.asarray(a, np.float32), np.asarray(b, np.float32)
    return a_ + (b_ - a_) * t[:, None]


def _field(e, n, seed, fp):
    patches = 0.6 * _noise(e, n, 70.0, 1, seed, fp) + 0.4 * _noise(e, n, 28.0, 2, seed, fp)
    rgb = _mix((92, 128, 58), (170, 156, 96), _smoothstep(0.35, 0.65, patches))
    light = 0.88 + 0.24 * _noise(e, n, 9.0, 3, seed, fp) + 0.14 * (_noise(e, n, 1.2, 4, seed, fp) - 0.5)
    light += 0.16 * (_noise(e, n, 0.35, 18, seed, fp) - 0.5)  # grass grain
    # crop rows 1.5 m apart in some ~250 m patches, each patch with its own row direction
    crop = _smoothstep(0.58, 0.62, _noise(e, n, 250.0, 19, seed, None))
    theta = np.floor(_noise(e, n, 400.0, 24, seed, None) * 6.0) * (np.pi / 6.0)
    rows = np.sin(2.0 * np.pi * (e * np.cos(theta) + n * np.sin(theta)) / 1.5)
    if fp is not None:  # strict: rows alias into moire along the range, where a pixel is longest
        rows *= np.clip((1.5 / np.maximum(4.0 * fp, 1e-6) - 1.5) / 1.5, 0.0, 1.0)
    light += 0.12 * crop * rows
    return rgb * light[:, None]


@lru_cache(maxsize=1)
def _crown_tile() -> np.ndarray:
    """(T, T, 2) float32 periodic tile of tree crowns at 0.25 m texels: sunlit brightness, tree variant.

    One tree of radius 1.6-2.8 m per jittered 4 m cell, a dome lit from the south-east; taller
    crowns cover lower ones, gaps between crowns are in shade.
    """
    rng = np.random.default_rng(1867)
    cell, count = 16, _CROWN_TILE // 16
    jitter, radius, variant = rng.random((count, count, 2)), rng.uniform(6.4, 11.2, (count, count)), rng.random((count, count))
    ty, tx = np.mgrid[0:_CROWN_TILE, 0:_CROWN_TILE].astype(np.float32) + 0.5
    ci, cj = (ty // cell).astype(np.intp), (tx // cell).astype(np.intp)
    top = np.zeros_like(ty)
    out = np.zeros((*ty.shape, 2), np.float32)
    out[..., 0] = _CROWN_GAP
    light = np.array([0.5, -0.5, 0.7071], np.float32)  # towards the sun: south-east, 45 degrees up
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            ni, nj = (ci + di) % count, (cj + dj) % count
            dy, dx = ty - (ci + di + jitter[ni, nj, 0]) * cell, tx - (cj + dj + jitter[ni, nj, 1]) * cell
            r = radius[ni, nj]
            h = np.sqrt(np.clip(r * r - dx * dx - dy * dy, 0.0, None))
            wins = h > top
            top = np.where(wins, h, top)
            shade = 0.3 + 0.8 * np.clip((dx * light[0] + dy * light[1] + h * light[2]) / r, 0.0, 1.0)
            out[..., 0] = np.where(wins, shade, out[..., 0])
            out[..., 1] = np.where(wins, variant[ni, nj], out[..., 1])
    return out


def _crowns(e: np.ndarray, n: np.ndarray, seed: int) -> np.ndarray:
    """Crown brightness and variant (n, 2) sampled from the crown tile at ENU points."""
    angle = 0.7 + 1.3 * seed
    c, s = np.cos(angle), np.sin(angle)
    x = np.mod((c * e - s * n) / _CROWN_TEXEL_M + 97.0 * seed, _CROWN_TILE).astype(np.float32)
    y = np.mod((s * e + c * n) / _CROWN_TEXEL_M, _CROWN_TILE).astype(np.float32)
    return _remap(_crown_tile(), x, y, cv2.INTER_LINEAR).reshape(-1, 2)


def _forest(e, n, seed, fp):
    crowns = _crowns(e, n, seed)
    brightness, variant = crowns[:, 0], crowns[:, 1]
    if fp is not None:  # crowns average out when a pixel covers several trees
        weight = np.clip((4.0 / np.maximum(fp, 1e-6) - 1.5) / 1.5, 0.0, 1.0)
        brightness = 0.6 + (brightness - 0.6) * weight
        variant = 0.5 + (variant - 0.5) * weight
    kind = _smoothstep(0.35, 0.75, 0.6 * variant + 0.4 * _noise(e, n, 60.0, 7, seed, fp))
    rgb = _mix((24, 50, 32), (62, 92, 44), kind)
    light = brightness * (0.9 + 0.2 * _noise(e, n, 25.0, 8, seed, fp))
    return rgb * light[:, None]


def _water(e, n, seed, fp):
    phase = 2.0 * np.pi * (0.8 * e + 0.6 * n) / 1.7 + 6.0 * _noise(e, n, 6.0, 9, seed, None)
    ripple = np.sin(phase) * (_noise(e, n, 1.7, 10, seed, fp) - 0.5) * 2.0
    light = 0.94 + 0.12 * _noise(e, n, 40.0, 11, seed, fp) + 0.08 * ripple
    return np.asarray((62, 84, 98), np.float32) * light[:, None]


def _vista(e, n, seed, fp):
    rgb = _mix((138, 148, 92), (160, 142, 110), _smoothstep(0.3, 0.7, _noise(e, n, 5.0, 12, seed, fp)))
    return rgb * (0.96 + 0.16 * (_noise(e, n, 0.9, 13, seed, fp) - 0.5))[:, None]


def _asphalt(e, n, seed, fp):
    light = 0.95 + 0.1 * _noise(e, n, 3.0, 14, seed, fp) + 0.08 * (_noise(e, n, 0.5, 15, seed, fp) - 0.5)
    return np.asarray((92, 92, 95), np.float32) * light[:, None]


def _gravel(e, n, seed, fp):
    light = 0.94 + 0.12 * _noise(e, n, 2.0, 16, seed, fp) + 0.16 * (_noise(e, n, 0.5, 17, seed, fp) - 0.5)
    return np.asarray((150, 140, 122), np.float32) * light[:, None]


def _flat(rgb):
    return lambda e, n, seed, fp: np.broadcast_to(np.asarray(rgb, np.float32), (len(e), 3))


_PALETTE = {
    GroundKind.FIELD: _field,
    GroundKind.FOREST: _forest,
    GroundKind.WATER: _water,
    GroundKind.VISTA: _vista,
    GroundKind.ASPHALT: _asphalt,
    GroundKind.GRAVEL: _gravel,
    GroundKind.ROAD_LINE: _flat((225, 225, 214)),
    GroundKind.MONUMENT: _flat((218, 218, 212)),
}


def ground_colour(world: WorldMap, e: np.ndarray, n: np.ndarray, footprint_m: np.ndarray | None = None) -> np.ndarray:
    """Colours (n, 3) uint8 BGR of the ground at ENU points e (n,), n (n,) in metres.

    ``footprint_m`` (n,), optional: the size of the pixel on the ground at each point; detail
    finer than it is averaged out (anti-aliasing). Without it the colour depends only on the
    position and ``world.texture_seed``. Example: ``ground_colour(world, np.array([0.0]),
    np.array([12.5]))`` is the (1, 3) BGR colour of the point 12.5 m north of the origin.
    """
    e = np.asarray(e, dtype=np.float64).reshape(-1)
    n = np.asarray(n, dtype=np.float64).reshape(-1)
    fp = None if footprint_m is None else np.asarray(footprint_m, dtype=np.float32).reshape(-1)
    kinds = ground_kind(world, e, n, fp)
    rgb = np.zeros((len(e), 3), np.float32)
    for kind, colour in _PALETTE.items():
        where = np.flatnonzero(kinds == kind)
        if len(where):
            rgb[where] = colour(e[where], n[where], world.texture_seed, None if fp is None else fp[where])
    return np.clip(rgb[:, ::-1] + 0.5, 0, 255).astype(np.uint8)
