"""Evidence references as the console and the alert service read them.

The detect stage's filesystem store names evidence with ``file://`` URIs (absolute paths, see
:class:`detect.evidence.FilesystemEvidenceStore`); the console serves, exports and purges files
under ``console.evidence_dir``, and the alert service serves a partner's signed evidence links from
the same folder. A reference is accepted either as a ``file://`` URI inside that
folder or as a path relative to it. Pages and the API hand the browser the relative *key*
(``/api/evidence/<key>``), never an absolute path. Anything else (another scheme, a path that
leaves the folder) is not the console's to read: it has no key and no file.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit


def evidence_key(ref: str | None, root: Path) -> str | None:
    """The path of ``ref`` relative to ``root`` (``cam-1/1789-92/track-27.jpg``), or None."""
    if not ref:
        return None
    base = root.resolve()
    parts = urlsplit(ref)
    if parts.scheme == "file":
        path = Path(unquote(parts.path)).resolve()
    elif parts.scheme == "" and not PurePosixPath(ref).is_absolute():
        path = (base / ref).resolve()
    else:
        return None
    if not path.is_relative_to(base) or path == base:
        return None
    return path.relative_to(base).as_posix()


def evidence_file(ref: str | None, root: Path) -> Path | None:
    """The existing file ``ref`` names under ``root``, or None."""
    key = evidence_key(ref, root)
    if key is None:
        return None
    path = root.resolve() / key
    return path if path.is_file() else None


def evidence_keys(refs: Iterable[str | None], root: Path) -> list[str]:
    """The keys of ``refs`` that have one, in order, without repeats."""
    return list(dict.fromkeys(k for k in (evidence_key(r, root) for r in refs) if k))
