"""Draws docs/images/layers.png: the packages in their layers, with the imports between them as
grimp reads them from the code (an arrow A -> B: A imports B). Run after a layout change:

    .venv/bin/python scripts/draw_layers.py
"""

from __future__ import annotations

import itertools
from pathlib import Path

import grimp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
LAYERS = [  # top to bottom, with what each package is; every import runs downwards
    [("ibet_app", "application shell\nCLI, demo, up, benches"), ("ibet_testing", "test servers\nKafka, PostgreSQL, HTTP")],
    [("console", "console\noperators, analysts")],
    [("ingest", "ingest\npush API, sources"), ("detect", "detect\nYOLO, image tracks"), ("fuse", "fuse\ngeoref, tracks, border"),
     ("alerts", "alerts\npartners, outbox")],
    [("models", "models\nregistry, demo model"), ("sim", "sim\nscenarios, truth")],
    [("ibet", "ibet (kernel)\nmessages, topics, bus, runner,\nconfig, registry, border, db")],
]


def main() -> None:
    packages = [name for layer in LAYERS for name, _ in layer]
    graph = grimp.build_graph(*packages)
    fig, ax = plt.subplots(figsize=(12, 9), dpi=110)
    ax.set_xlim(0, 12)
    ax.set_ylim(0, 10)
    ax.axis("off")
    centre: dict[str, tuple[float, float]] = {}
    for row, layer in enumerate(LAYERS):
        y = 9.2 - row * 2.0
        width = 12.0 / len(layer)
        for i, (name, label) in enumerate(layer):
            x = width * (i + 0.5)
            centre[name] = (x, y)
            box_w = min(2.6, width - 0.4) if name != "ibet" else 5.0
            colour = {0: "#f3d9b1", len(LAYERS) - 1: "#c9dcf0"}.get(row, "#d8ecd2")
            ax.add_patch(FancyBboxPatch((x - box_w / 2, y - 0.45), box_w, 0.9, boxstyle="round,pad=0.05",
                                        fc=colour, ec="#444", lw=1.2))
            ax.text(x, y, label, ha="center", va="center", fontsize=9)
    for a, b in itertools.permutations(packages, 2):
        if graph.direct_import_exists(importer=a, imported=b, as_packages=True):
            (xa, ya), (xb, yb) = centre[a], centre[b]
            same_row = abs(ya - yb) < 0.1
            ax.add_patch(FancyArrowPatch((xa, ya - (0 if same_row else 0.5)), (xb, yb + (0 if same_row else 0.5)),
                                         arrowstyle="-|>", mutation_scale=12, lw=0.9, color="#555",
                                         connectionstyle="arc3,rad=0.25" if same_row else "arc3,rad=0.0",
                                         shrinkA=40 if same_row else 2, shrinkB=40 if same_row else 2))
    ax.set_title("ibet's packages in layers: an arrow A → B means A imports B (read from the code by grimp)",
                 fontsize=11)
    out = REPO / "docs" / "images" / "layers.png"
    fig.savefig(out, bbox_inches="tight")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
