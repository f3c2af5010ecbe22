"""The registry: the shipped example loads, and every kind of mistake names file, entry and field."""

from __future__ import annotations

import base64
import copy
import hashlib
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml

from ibet.exceptions import RegistryError
from ibet.registry import Registry, load_registry

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "registry.yaml"


@pytest.fixture(scope="module")
def example() -> Registry:
    return load_registry(EXAMPLE)


@pytest.fixture(scope="module")
def example_data() -> dict[str, Any]:
    return yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------- the example loads

def test_example_registry_loads(example: Registry) -> None:
    assert [s.id for s in example.sectors] == [
        "pac-blaine", "prairie-sweetgrass", "prairie-emerson", "gl-detroit", "qc-champlain", "qc-derby"]
    assert example.sector("pac-blaine").timezone == "America/Vancouver"
    assert example.sector("prairie-emerson").ibet_region == "Prairie"
    assert {p.id: p.country for p in example.partners} == {
        "rcmp": "CA", "cbsa": "CA", "usbp": "US", "hsi": "US", "wsp": "US", "sq": "CA"}
    assert example.partner("sq").agency_kind == "provincial_police"
    assert example.partner("wsp").agency_kind == "state_police"


def test_example_sensors_and_geometry(example: Registry) -> None:
    assert [s.id for s in example.sensors_in("pac-blaine")] == [
        "blaine-drone-1", "blaine-cam-1", "blaine-cam-2", "drone-vista-1", "cam-vista-tower", "cam-peace-arch"]
    assert [s.id for s in example.sensors_in("prairie-sweetgrass")] == []
    drones = [s for s in example.sensors if s.kind == "drone"]
    assert {d.sector_id for d in drones} == {"pac-blaine", "qc-champlain", "qc-derby"}
    assert all(d.pose is None and d.credential_hash is None for d in drones)
    posed = example.sensor("blaine-cam-1")
    assert posed.pose is not None and 48.9 < posed.pose.lat_deg < 49.1 and -123 < posed.pose.lon_deg < -122.5
    gcps = example.sensor("blaine-cam-2").ground_control_points
    assert len(gcps) == 4 and all(48.9 < g.lat_deg < 49.1 and -123 < g.lon_deg < -122.5 for g in gcps)


def test_example_partners_and_neighbours(example: Registry) -> None:
    assert [p.id for p in example.partners_for("qc-derby")] == ["rcmp", "cbsa", "usbp", "sq"]
    assert [p.id for p in example.partners_for("pac-blaine")] == ["rcmp", "cbsa", "usbp", "hsi", "wsp"]
    for sector in example.sectors:  # mutual aid goes both ways in the example
        for other in sector.neighbours:
            assert sector.id in example.sector(other).neighbours


def test_registry_is_frozen(example: Registry) -> None:
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        example.sector("pac-blaine").ground_elev_m = 5.0  # type: ignore[misc]


@pytest.mark.parametrize(("lookup", "argument", "message"), [
    ("sensor", "nope", "unknown sensor 'nope'"),
    ("sector", "XX", "unknown sector 'XX'"),
    ("partner", "fbi", "unknown partner 'fbi'"),
    ("sensors_in", "XX", "unknown sector 'XX'"),
    ("partners_for", "XX", "unknown sector 'XX'"),
])
def test_lookup_of_unknown_id(example: Registry, lookup: str, argument: str, message: str) -> None:
    with pytest.raises(RegistryError) as err:
        getattr(example, lookup)(argument)
    assert str(err.value) == message


# --------------------------------------------------------------- bad registries, one per case

Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutation:
    """Mutation that sets ``value`` at a dotted path such as ``sensors.2.pose.heading_deg``."""
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]

    def mutate(data: dict[str, Any]) -> None:
        node: Any = data
        for part in parents:
            node = node[part]
        node[last] = value
    return mutate


def _delete(path: str) -> Mutation:
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]

    def mutate(data: dict[str, Any]) -> None:
        node: Any = data
        for part in parents:
            node = node[part]
        del node[last]
    return mutate


def _rename(path: str, new_key: str) -> Mutation:
    *parents, last = path.split(".")

    def mutate(data: dict[str, Any]) -> None:
        node: Any = data
        for part in parents:
            node = node[int(part) if part.isdigit() else part]
        node[new_key] = node.pop(last)
    return mutate


BAD_CASES: list[tuple[str, Mutation, str]] = [
    ("unknown sector on a sensor", _set("sensors.2.sector_id", "XX"),
     "sensors[2] (id 'blaine-cam-1').sector_id: 'XX' is not a known sector"),
    ("unknown owner agency", _set("sensors.0.owner_agency", "fbi"),
     "sensors[0] (id 'blaine-drone-1').owner_agency: 'fbi' is not a known partner"),
    ("duplicate sensor id", _set("sensors.3.id", "blaine-cam-1"),
     "sensors[3] (id 'blaine-cam-1').id: duplicate sensor id 'blaine-cam-1' (first at sensors[2])"),
    ("duplicate sector id", _set("sectors.5.id", "pac-blaine"),
     "sectors[5] (id 'pac-blaine').id: duplicate sector id 'pac-blaine' (first at sectors[0])"),
    ("bad id pattern", _set("partners.0.id", "-rcmp"),
     "partners[0] (id '-rcmp').id: String should match pattern"),
    ("bad timezone", _set("sectors.1.timezone", "Mountain/Calgary"),
     "sectors[1] (id 'prairie-sweetgrass').timezone: 'Mountain/Calgary' is not an IANA time zone name"),
    ("unknown region", _set("sectors.0.ibet_region", "Yukon"),
     "sectors[0] (id 'pac-blaine').ibet_region: Input should be 'Pacific', 'Prairie'"),
    ("unknown neighbour", _set("sectors.5.neighbours", ["qc-champlain", "nb-calais"]),
     "sectors[5] (id 'qc-derby').neighbours[1]: 'nb-calais' is not a known sector"),
    ("own neighbour", _set("sectors.5.neighbours", ["qc-derby"]),
     "sectors[5] (id 'qc-derby').neighbours[0]: a sector cannot be its own neighbour"),
    ("partner covers unknown sector", _set("partners.5.sectors", ["qc-derby", "qc-gaspe"]),
     "partners[5] (id 'sq').sectors[1]: 'qc-gaspe' is not a known sector"),
    ("NaN in a pose", _set("sensors.2.pose.lat_deg", math.nan),
     "sensors[2] (id 'blaine-cam-1').pose.lat_deg: Input should be a finite number"),
    ("infinite rate", _set("sensors.0.detection_rate_hz", math.inf),
     "sensors[0] (id 'blaine-drone-1').detection_rate_hz: Input should be a finite number"),
    ("heading out of range", _set("sensors.2.pose.heading_deg", 360.0),
     "sensors[2] (id 'blaine-cam-1').pose.heading_deg: Input should be less than 360"),
    ("zero field of view", _set("sensors.2.pose.hfov_deg", 0),
     "sensors[2] (id 'blaine-cam-1').pose.hfov_deg: Input should be greater than 0"),
    ("clear-text credential", _set("sensors.0.credential_hash", "hunter2-drone-secret"),
     "sensors[0] (id 'blaine-drone-1').credential_hash: credentials are stored hashed"),
    ("hash prefix alone", _set("sensors.0.credential_hash", "$2b$not-really-a-hash"),
     "sensors[0] (id 'blaine-drone-1').credential_hash: credentials are stored hashed"),
    ("fixed camera without pose or GCPs", _delete("sensors.2.pose"),
     "sensors[2] (id 'blaine-cam-1'): a fixed_camera needs a pose or at least 4 ground_control_points"),
    ("too few GCPs", lambda d: d["sensors"][3]["ground_control_points"].pop(),
     "sensors[3] (id 'blaine-cam-2').ground_control_points: needs at least 4 ground control points"),
    ("NaN in a GCP", _set("sensors.3.ground_control_points.1.lon_deg", math.nan),
     "sensors[3] (id 'blaine-cam-2').ground_control_points[1].lon_deg: Input should be a finite number"),
    ("drone with a fixed pose", _set("sensors.0.pose", {
        "lat_deg": 49.0, "lon_deg": -122.75, "height_m": 10, "heading_deg": 0, "tilt_deg": 5, "hfov_deg": 60}),
     "sensors[0] (id 'blaine-drone-1'): a drone takes no pose"),
    ("unknown kind", _set("sensors.1.kind", "balloon"),
     "sensors[1] (id 'champlain-drone-1').kind: Input should be 'drone' or 'fixed_camera'"),
    ("principal point outside image", _set("sensors.2.intrinsics.cx_px", 5000.0),
     "sensors[2] (id 'blaine-cam-1').intrinsics: principal point (cx_px, cy_px) lies outside the image"),
    ("password in camera URL", _set("sensors.2.source_url", "rtsp://admin:secret@127.0.0.1/cam"),
     "sensors[2] (id 'blaine-cam-1').source_url: must not contain a password"),
    ("SRT passphrase in a stream URL", _set("sensors.1.source_url", "srt://0.0.0.0:9000?mode=listener&passphrase=s3cr3t-pass"),
     "sensors[1] (id 'champlain-drone-1').source_url: must not contain a secret (passphrase)"),
    ("FTP source", _set("sensors.2.source_url", "ftp://10.0.0.5/cam.avi"),
     "sensors[2] (id 'blaine-cam-1').source_url: must be an rtsp://"),
    ("typo in a sensor key", _rename("sensors.1.detection_rate_hz", "detection_rate"),
     "sensors[1] (id 'champlain-drone-1').detection_rate: unknown key (did you mean 'detection_rate_hz'?)"),
    ("typo in a nested key", _rename("sensors.2.pose.hfov_deg", "hfov"),
     "sensors[2] (id 'blaine-cam-1').pose.hfov: unknown key (did you mean 'hfov_deg'?)"),
    ("typo at the top level", _rename("partners", "partner"),
     "partner: unknown key (did you mean 'partners'?)"),
    ("missing field", _delete("sectors.2.timezone"),
     "sectors[2] (id 'prairie-emerson').timezone: Field required"),
    ("bad country", _set("partners.1.country", "MX"),
     "partners[1] (id 'cbsa').country: Input should be 'CA' or 'US'"),
    ("webhook not http", _set("partners.0.contacts.webhook_url", "ftp://127.0.0.1/hook"),
     "partners[0] (id 'rcmp').contacts.webhook_url: must be an http:// or https:// URL"),
    ("bad e-mail", _set("partners.2.contacts.email", ["ops.example.org"]),
     "partners[2] (id 'usbp').contacts.email: 'ops.example.org' is not an e-mail address"),
    ("TAK endpoint without port", _set("partners.0.contacts.tak_endpoint", "127.0.0.1"),
     "partners[0] (id 'rcmp').contacts.tak_endpoint: '127.0.0.1' is not 'host:port'"),
    ("TAK port out of range", _set("partners.0.contacts.tak_endpoint", "tak.example.org:70000"),
     "partners[0] (id 'rcmp').contacts.tak_endpoint: 'tak.example.org:70000' is not 'host:port'"),
]


@pytest.mark.parametrize(("mutate", "expected"), [c[1:] for c in BAD_CASES], ids=[c[0] for c in BAD_CASES])
def test_bad_registry_names_entry_and_field(
        tmp_path: Path, example_data: dict[str, Any], mutate: Mutation, expected: str) -> None:
    data = copy.deepcopy(example_data)
    mutate(data)
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    with pytest.raises(RegistryError) as err:
        load_registry(path)
    assert any(line.startswith(f"{path}: {expected}") for line in str(err.value).splitlines()), str(err.value)


def test_clear_text_credential_is_never_echoed(tmp_path: Path, example_data: dict[str, Any]) -> None:
    data = copy.deepcopy(example_data)
    data["sensors"][0]["credential_hash"] = "hunter2-drone-secret"
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    with pytest.raises(RegistryError) as err:
        load_registry(path)
    assert "hunter2" not in str(err.value)
    assert err.value.__cause__ is None and err.value.__suppress_context__  # no pydantic echo in tracebacks


def test_every_problem_is_reported(tmp_path: Path, example_data: dict[str, Any]) -> None:
    data = copy.deepcopy(example_data)
    data["sensors"][0]["sector_id"] = "XX"
    data["sensors"][1]["sector_id"] = "YY"
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    with pytest.raises(RegistryError) as err:
        load_registry(path)
    assert str(err.value).splitlines() == [
        f"{path}: sensors[0] (id 'blaine-drone-1').sector_id: 'XX' is not a known sector",
        f"{path}: sensors[1] (id 'champlain-drone-1').sector_id: 'YY' is not a known sector",
    ]


def _bcrypt_shaped() -> str:
    return "$2b$12$" + "R9h/cIPz0gi.URNNX3kh2O" + "PST9/PgBkqquzi.Ss7KIUgO2t0jWMUW"


def _pbkdf2_sha256(secret: str) -> str:
    salt, iterations = "c2FsdHNhbHQ", 600_000
    digest = hashlib.pbkdf2_hmac("sha256", secret.encode(), salt.encode(), iterations)
    return f"pbkdf2_sha256${iterations}${salt}${base64.b64encode(digest).decode()}"


@pytest.mark.parametrize("credential", [
    _pbkdf2_sha256("drone-secret"),
    _bcrypt_shaped(),
    "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHRzYWx0$Ym9ndXNoYXNoYm9ndXNoYXNoYm9ndXNoYXNo",
])
def test_hashed_credentials_are_accepted(tmp_path: Path, example_data: dict[str, Any], credential: str) -> None:
    data = copy.deepcopy(example_data)
    data["sensors"][0]["credential_hash"] = credential
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    assert load_registry(path).sensor("blaine-drone-1").credential_hash == credential


# ------------------------------------------------------------- files that are not a registry

@pytest.mark.parametrize(("text", "expected"), [
    ("sectors:\n  - id: pac-blaine\n    name: [Blaine\n", r": line 4, column 1: invalid YAML: "),
    ("sectors: []\nsensors: []\npartners: []\nsensors: []\n", r": line 4, column 1: invalid YAML: found duplicate key 'sensors'"),
    ("- id: pac-blaine\n- id: qc-derby\n",
     r": the top level must be a mapping with keys sectors, sensors, partners; got a list"),
    ("", r": the top level must be a mapping with keys sectors, sensors, partners; got an empty file"),
    ("just a string\n", r": the top level must be a mapping with keys sectors, sensors, partners; got a str"),
], ids=["syntax error", "duplicate key", "top-level list", "empty file", "top-level scalar"])
def test_unparseable_registry(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "registry.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RegistryError) as err:
        load_registry(path)
    assert str(err.value).startswith(f"{path}{expected}"), str(err.value)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(RegistryError, match=r"absent\.yaml: cannot read registry"):
        load_registry(path)


def test_registry_built_in_code_is_cross_checked(example: Registry) -> None:
    sensor = example.sensor("blaine-drone-1").model_copy(update={"id": "stray", "sector_id": "XX"})
    position = len(example.sensors)
    with pytest.raises(pydantic.ValidationError, match=rf"sensors\[{position}\]\.sector_id: 'XX' is not a known sector"):
        Registry(sectors=example.sectors, sensors=(*example.sensors, sensor), partners=example.partners)
