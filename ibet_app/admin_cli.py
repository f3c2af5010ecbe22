"""``ibet sector add``, ``ibet sensors add``, ``ibet sim new``: thin commands over :mod:`ibet_app.registry_admin`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from ibet.cli_support import ConfigOption
from ibet.cli_support import fail as _fail
from ibet.cli_support import load_config_and_registry as _load
from ibet.exceptions import IbetError

sector_app = typer.Typer(help="Sectors of the registry: add one at a place on the border.", no_args_is_help=True)

PlaceOption = Annotated[str, typer.Option("--at", help="'lat,lon', or a port of entry by id or name "
                                                       "(the point where its lanes meet the shipped line).")]


def _context(config: Path | None):
    from ibet.border import load_border, load_ports_of_entry
    from ibet_app.registry_admin import resolve_place

    cfg, registry = _load(config)
    border = load_border()
    ports = load_ports_of_entry(cfg.ports_of_entry_file())
    return cfg, registry, border, lambda text: resolve_place(text, ports, border)


def _names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


@sector_app.command("add")
def sector_add(
    sector_id: Annotated[str, typer.Argument(help="New sector id, e.g. 'atl-calais'.")],
    name: Annotated[str, typer.Option(help="Human-readable name, e.g. 'Calais / St. Stephen'.")],
    region: Annotated[Literal["Pacific", "Prairie", "Great Lakes", "Quebec", "Atlantic"],
                      typer.Option(help="IBET region.")],
    at: PlaceOption,
    ground_msl_m: Annotated[float, typer.Option(help="Ground height above mean sea level (m), as maps give it; "
                                                     "the registry gets it above the ellipsoid (EGM96 geoid).")],
    partners: Annotated[str, typer.Option(help="Comma-separated partner ids that cover the sector.")] = "",
    neighbours: Annotated[str, typer.Option(help="Comma-separated sector ids for mutual aid (both ways).")] = "",
    timezone: Annotated[str | None, typer.Option(help="IANA zone (default: the zone at the place).")] = None,
    config: ConfigOption = None,
) -> None:
    """Add a sector at a place on the border, with its ground height, time zone, partners and neighbours."""
    from ibet_app.registry_admin import add_sector

    cfg, registry, border, place_of = _context(config)
    try:
        added = add_sector(cfg.registry_file(), registry, border, sector_id=sector_id, name=name, region=region,
                           place=place_of(at), ground_msl_m=ground_msl_m, timezone=timezone,
                           partners=_names(partners), neighbours=_names(neighbours))
    except IbetError as exc:
        _fail(str(exc))
    typer.echo(f"sector {added.sector_id} added to {cfg.registry_file()}: time zone {added.timezone}, ground "
               f"{added.ground_elev_m} m above the ellipsoid (geoid {added.geoid_m:+} m), partners "
               f"{', '.join(added.partners) or 'none'}")
    if added.countries_without_partner:
        typer.echo(f"warning: no partner of {', '.join(added.countries_without_partner)} covers it")
    typer.echo("next: give it duty shifts in rosters.yaml; `ibet config check` names the hours nobody covers")


@sector_app.command("list")
def sector_list(config: ConfigOption = None) -> None:
    """The registry's sectors: id, name, time zone, ground height, partners covering each."""
    _, registry = _load(config)
    for sector in registry.sectors:
        covering = [p.id for p in registry.partners if sector.id in p.sectors]
        typer.echo(f"{sector.id}\t{sector.name}\t{sector.timezone}\t{sector.ground_elev_m} m\t{','.join(covering)}")


def sensors_add(
    sensor_id: Annotated[str, typer.Argument(help="New sensor id, e.g. 'cam-calais-1'.")],
    sector: Annotated[str, typer.Option(help="Sector id it watches.")],
    owner: Annotated[str, typer.Option(help="Partner id of the agency that operates it.")],
    at: PlaceOption,
    kind: Annotated[Literal["fixed_camera", "drone"], typer.Option(help="fixed_camera or drone.")] = "fixed_camera",
    offset_m: Annotated[str, typer.Option(help="'east,north' metres from the place (a camera's stand).")] = "0,0",
    height_m: Annotated[float, typer.Option(help="Lens above the ground (m).")] = 10.0,
    heading_deg: Annotated[float | None, typer.Option(help="Azimuth of the axis (default: at the line).")] = None,
    tilt_deg: Annotated[float, typer.Option(help="Axis below the horizon (deg).")] = 3.0,
    hfov_deg: Annotated[float, typer.Option(help="Horizontal field of view (deg).")] = 25.0,
    width_px: Annotated[int, typer.Option(help="Image width (px).")] = 1280,
    height_px: Annotated[int, typer.Option(help="Image height (px).")] = 720,
    source_url: Annotated[str | None, typer.Option(help="Where ingest pulls a camera's video.")] = None,
    config: ConfigOption = None,
) -> None:
    """Add a fixed camera (its pose placed from a place on the border) or a drone to the registry."""
    from ibet_app.registry_admin import AdminError, add_sensor

    cfg, registry, border, place_of = _context(config)
    try:
        try:
            east, north = (float(v) for v in offset_m.split(","))
        except ValueError:
            raise AdminError(f"--offset-m {offset_m!r} must be 'east,north' metres") from None
        pose = add_sensor(cfg.registry_file(), registry, border, sensor_id=sensor_id, sector_id=sector, kind=kind,
                          owner=owner, place=place_of(at), offset_m=(east, north), height_m=height_m,
                          heading_deg=heading_deg, tilt_deg=tilt_deg, hfov_deg=hfov_deg, width_px=width_px,
                          height_px=height_px, source_url=source_url)
    except IbetError as exc:
        _fail(str(exc))
    where = f" at {pose.lat_deg}, {pose.lon_deg} looking {pose.heading_deg} deg" if pose else ""
    typer.echo(f"{kind.replace('_', ' ')} {sensor_id} added to {cfg.registry_file()} (sector {sector}){where}")
    if kind == "drone":
        typer.echo(f"next: ibet sensors enroll {sensor_id} (its push credential)")


def sim_new(
    name: Annotated[str, typer.Argument(help="Scenario name, e.g. 'foot-crossing-calais'.")],
    sector: Annotated[str, typer.Option(help="Sector id (its cameras are placed in the scenario).")],
    at: PlaceOption,
    out: Annotated[Path, typer.Option(help="Scenario file to write.")],
    start: Annotated[str, typer.Option(help="Local start time 'HH:MM' in the sector's zone.")] = "11:00",
    config: ConfigOption = None,
) -> None:
    """Write a scenario skeleton at a place: origin on the shipped line, the sector's cameras, one crossing."""
    from ibet_app.registry_admin import new_scenario
    from sim.scenario import load_scenario

    _, registry, border, place_of = _context(config)
    try:
        text = new_scenario(registry, border, name=name, sector_id=sector, place=place_of(at), start_local=start)
        if out.exists():
            _fail(f"{out} exists; not overwritten")
        out.write_text(text, encoding="utf-8")
        load_scenario(out)  # what we wrote must load; if not, nothing is left behind
    except (IbetError, ValueError) as exc:
        if out.exists() and out.read_text(encoding="utf-8") == text:
            out.unlink()
        _fail(str(exc))
    typer.echo(f"wrote {out}: run it with `ibet eval {out}` or `ibet sim run {out}`")
