"""Drone push tokens: issued once, stored only as a hash in the registry, checked per frame.

``enroll``/``rotate``/``revoke`` edit the drone's ``credential_hash`` in the registry YAML in place
(ruamel.yaml round trip: comments, order and layout kept), validate the edited file with
:func:`ibet.registry.load_registry`, and only then replace the file (temp file, atomic rename).

A token carries 256 random bits, so a slow password hash adds nothing but cost (and hands anyone
who sends wrong tokens a CPU to burn): the registry stores ``sha256$<hex>`` of the token, compared
in constant time, as the alert contacts' tokens are. Hashes from before (argon2id) still verify,
slowly and cached per (sensor, stored hash, sha256 of the token), and are replaced by the sha256
form on the drone's next good push (:func:`upgrade_hash`) when the registry file is writable;
``ibet sensors rotate`` replaces one by hand. Whose token a wrong token is (403 rather than 401)
is looked up among the sha256 hashes by digest, never by trying each drone's hash.

    >>> token = new_token()
    >>> verify_token(hash_token(token), token)
    True
    >>> hash_token("ibet_x")[:7]
    'sha256$'
"""

from __future__ import annotations

import hashlib
import hmac
import io
import os
import secrets
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from ruamel.yaml import YAML

from ibet.clock import Clock, SystemClock
from ibet.exceptions import RegistryError
from ibet.registry import load_registry
from ingest.exceptions import CredentialError

TOKEN_PREFIX = "ibet_"
TOKEN_BYTES = 32  # 256 bits of entropy
SHA256_PREFIX = "sha256$"
_LEGACY_HASHER = PasswordHasher()  # argon2id hashes stored before sha256 (verified only, never made)
_NS = 1_000_000_000


def new_token() -> str:
    """A fresh device token: ``ibet_`` and 32 random bytes, URL-safe base64 (48 characters)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def token_digest(token: str) -> str:
    """sha256 hex of a token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def hash_token(token: str) -> str:
    """What the registry stores as ``credential_hash``: ``sha256$`` and the token's sha256 hex."""
    return SHA256_PREFIX + token_digest(token)


def is_legacy_hash(credential_hash: str) -> bool:
    """Whether ``credential_hash`` is of the slow kind stored before sha256 (to be upgraded)."""
    return not credential_hash.startswith(SHA256_PREFIX)


def verify_token(credential_hash: str, token: str) -> bool:
    """Whether ``token`` matches ``credential_hash`` (constant time; no cache).

    False, never an exception, for a mismatch or a hash that cannot be read. A legacy argon2 hash
    takes ~0.1 s of CPU; a sha256 one microseconds.
    """
    if not is_legacy_hash(credential_hash):
        return hmac.compare_digest(credential_hash[len(SHA256_PREFIX):].encode(), token_digest(token).encode())
    try:
        return _LEGACY_HASHER.verify(credential_hash, token)
    except (VerificationError, InvalidHashError):
        return False


class TokenVerifier:
    """:func:`verify_token`, with an in-process cache of the outcomes of legacy (argon2) hashes, valid
    ``ttl_s`` seconds of ``clock``.

    Thread-safe. The cache holds at most ``max_entries`` outcomes (oldest dropped first); keys are
    (sensor id, stored hash, sha256(token)), never the token itself.
    """

    def __init__(self, ttl_s: float = 300.0, clock: Clock | None = None, max_entries: int = 10_000):
        self.ttl_ns = int(ttl_s * _NS)
        self._clock = clock or SystemClock()
        self._max_entries = max_entries
        self._cache: OrderedDict[tuple[str, str, str], tuple[bool, int]] = OrderedDict()
        self._lock = threading.Lock()

    def verify(self, sensor_id: str, credential_hash: str | None, token: str) -> bool:
        """Whether ``token`` is ``sensor_id``'s, whose stored hash is ``credential_hash`` (None: not enrolled)."""
        if credential_hash is None or not token:
            return False
        if not is_legacy_hash(credential_hash):
            return verify_token(credential_hash, token)
        key = (sensor_id, credential_hash, token_digest(token))
        now_ns = self._clock.now_ns()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit[1] > now_ns:
                return hit[0]
        ok = verify_token(credential_hash, token)  # slow: outside the lock
        with self._lock:
            self._cache[key] = (ok, now_ns + self.ttl_ns)
            self._cache.move_to_end(key)
            while len(self._cache) > self._max_entries:
                self._cache.popitem(last=False)
        return ok

    @staticmethod
    def owner(token: str, enrolled: Iterable[tuple[str, str]]) -> str | None:
        """The sensor among ``enrolled`` (sensor id, stored hash) pairs whose sha256 hash this token
        has, or None. Legacy hashes are never tried: that would cost a slow hash per enrolled drone."""
        stored = hash_token(token).encode()
        owner = None
        for sensor_id, credential_hash in enrolled:  # every pair compared, in constant time each
            if hmac.compare_digest(credential_hash.encode(), stored):
                owner = sensor_id
        return owner


def upgrade_hash(registry_path: str | Path, sensor_id: str, token: str) -> None:
    """Replace drone ``sensor_id``'s legacy hash by the sha256 one of ``token`` (just verified), in the
    registry file. CredentialError if the file cannot be changed (e.g. a read-only ConfigMap)."""
    try:
        _set_credential(Path(registry_path), sensor_id, hash_token(token), expect_enrolled=True)
    except OSError as exc:
        raise CredentialError(f"{registry_path}: cannot store the upgraded hash of {sensor_id}: {exc}") from None


# Enrolment: editing the registry file
def enroll(registry_path: str | Path, sensor_id: str) -> str:
    """Issue the first token of drone ``sensor_id``; store its hash in the registry; return the token.

    CredentialError if the sensor is unknown, not a drone, or already enrolled (use rotate).
    """
    token = new_token()
    _set_credential(Path(registry_path), sensor_id, hash_token(token), expect_enrolled=False)
    return token


def rotate(registry_path: str | Path, sensor_id: str) -> str:
    """Replace an enrolled drone's token; the old one stops working. Return the new token."""
    token = new_token()
    _set_credential(Path(registry_path), sensor_id, hash_token(token), expect_enrolled=True)
    return token


def revoke(registry_path: str | Path, sensor_id: str) -> None:
    """Remove an enrolled drone's credential (``credential_hash: null``): it can no longer push."""
    _set_credential(Path(registry_path), sensor_id, None, expect_enrolled=True)


def _yaml() -> YAML:
    yaml = YAML()  # round-trip mode: comments, key order, flow style and quotes are kept
    yaml.preserve_quotes = True
    yaml.width = 4096  # never fold a long line (an argon2 hash)
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.representer.add_representer(type(None), lambda rep, _: rep.represent_scalar("tag:yaml.org,2002:null", "null"))
    return yaml


def _set_credential(path: Path, sensor_id: str, credential_hash: str | None, expect_enrolled: bool) -> None:
    try:
        before = load_registry(path)
    except RegistryError as exc:
        raise CredentialError(f"the registry must be valid before a credential can change: {exc}") from None
    index = next((i for i, s in enumerate(before.sensors) if s.id == sensor_id), None)
    if index is None:
        drones = ", ".join(s.id for s in before.sensors if s.kind == "drone") or "none"
        raise CredentialError(f"{path}: unknown sensor '{sensor_id}' (drones in the registry: {drones})")
    sensor = before.sensors[index]
    if sensor.kind != "drone":
        raise CredentialError(f"{path}: '{sensor_id}' is a {sensor.kind}, and only drones can be enrolled "
                              "(ingest pulls fixed cameras; they push nothing)")
    if expect_enrolled and sensor.credential_hash is None:
        raise CredentialError(f"{path}: drone '{sensor_id}' is not enrolled; enroll it first (ibet sensors enroll)")
    if not expect_enrolled and sensor.credential_hash is not None:
        raise CredentialError(f"{path}: drone '{sensor_id}' is already enrolled; rotate its token instead "
                              "(ibet sensors rotate), which stops the old one")
    expected = before.model_dump()
    expected["sensors"][index]["credential_hash"] = credential_hash

    yaml = _yaml()
    text = path.read_text(encoding="utf-8")
    data = yaml.load(text)  # load_registry has read it, so it parses
    entry = data["sensors"][index]
    # First choice: change only the value's characters, so the file differs by that one value. If the
    # layout is unusual (no such key yet, a multi-line value), ruamel writes the file: comments and order kept.
    spliced = _splice_value(text, entry, credential_hash) if "credential_hash" in entry else None
    if spliced is not None and _replace_if_expected(path, spliced, expected) is None:
        return
    entry["credential_hash"] = credential_hash
    out = io.StringIO()
    yaml.dump(data, out)
    problem = _replace_if_expected(path, out.getvalue(), expected)
    if problem is not None:
        raise CredentialError(f"{path}: left unchanged: {problem}")


def _splice_value(text: str, entry, credential_hash: str | None) -> str | None:
    """``text`` with only the characters of ``entry``'s credential_hash value replaced (comment and its
    column kept), or None when the value is not a one-line plain or quoted scalar."""
    line_no, col = entry.lc.value("credential_hash")
    lines = text.splitlines(keepends=True)
    line = lines[line_no]
    body = line.rstrip("\r\n")
    rest = body[col:]
    if rest[:1] in ("'", '"'):
        close = rest.find(rest[0], 1)
        if close < 0:
            return None
        value_end = col + close + 1
    else:
        hash_at = rest.find(" #")
        value_end = col + (hash_at if hash_at >= 0 else len(rest.rstrip()))
    comment_at = body.find("#", value_end)
    new_value = "null" if credential_hash is None else credential_hash
    if comment_at >= 0:  # keep the comment's column when the value fits before it
        column = comment_at
        if comment_at == value_end + 1:  # not aligned (e.g. after a hash): align with the other drones' comments
            column = _sibling_comment_column(lines, line_no, body[:col]) or comment_at
        segment = new_value + " " * max(1, column - col - len(new_value))
        new_body = body[:col] + segment + body[comment_at:]
    else:
        new_body = body[:col] + new_value + body[value_end:]
    lines[line_no] = new_body + line[len(body):]
    return "".join(lines)


def _sibling_comment_column(lines: list[str], line_no: int, key_text: str) -> int | None:
    """The column of the inline comment on the nearest other line that starts like ``key_text``."""
    for distance in range(1, len(lines)):
        for other in (line_no - distance, line_no + distance):
            if 0 <= other < len(lines) and lines[other].startswith(key_text):
                rest = lines[other][len(key_text):]
                hash_at = rest.find(" #")
                if hash_at >= 0 and rest[: hash_at].strip():
                    return len(key_text) + hash_at + len(rest[hash_at:]) - len(rest[hash_at:].lstrip(" "))
    return None


def _replace_if_expected(path: Path, text: str, expected: dict) -> str | None:
    """Write ``text`` beside ``path`` and rename it over ``path`` if it loads as a registry equal to
    ``expected`` (the old one with the one credential changed); else leave ``path`` alone and say why."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            edited = load_registry(tmp)
        except RegistryError as exc:
            return "the edited registry does not validate: " + str(exc).replace(str(tmp), path.name)
        if edited.model_dump() != expected:
            return "the edit would change more than the credential"
        os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)
    return None


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
