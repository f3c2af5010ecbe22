"""The one place ibet imports Ultralytics: nothing is downloaded, nothing is auto-installed.

``YOLO_OFFLINE`` makes Ultralytics' online checks answer "offline", ``YOLO_AUTOINSTALL=false``
stops it from pip-installing missing requirements; both are read when the package is imported,
so every module of ibet that needs Ultralytics imports it through :func:`ultralytics_module`.
Ultralytics also sets OMP threads to 1 on import and torch's thread count on device selection;
:func:`use_threads` puts torch back to the number the configuration asks for.
"""

from __future__ import annotations

import os
from types import ModuleType

_FORCED = {"YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "false"}
_DEFAULTS = {"YOLO_VERBOSE": "false"}  # per-call logging off unless the operator asks for it


def ultralytics_module() -> ModuleType:
    """``import ultralytics`` with downloads and auto-installs off."""
    os.environ.update(_FORCED)
    for key, value in _DEFAULTS.items():
        os.environ.setdefault(key, value)
    import ultralytics

    return ultralytics


def use_threads(threads: int | None) -> int:
    """Set torch's intra-op threads (None: every core); return the number in use."""
    import torch

    torch.set_num_threads(threads or os.cpu_count() or 1)
    return torch.get_num_threads()
