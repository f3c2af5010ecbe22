"""Duty rosters: who is on duty, across midnight and DST, with overrides, rotations and iCalendar feeds."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from alerts.rosters import Override, Roster, Shift, import_ical, load_rosters, on_duty
from ibet.exceptions import RegistryError
from ibet.registry import load_registry

REPO = Path(__file__).resolve().parents[2]
ZONES = {"pac-blaine": "America/Vancouver", "gl-detroit": "America/Toronto", "prairie-emerson": "America/Winnipeg"}


def _shift(id_: str, sector: str, start: str, end: str, contacts: list[str], **kw: object) -> dict:
    return {"id": id_, "partner_id": kw.pop("partner_id", "usbp"), "sector_id": sector, "start": start, "end": end,
            "contacts": contacts, **kw}


ROSTER = Roster.model_validate({
    "timezones": ZONES,
    "shifts": [
        *(_shift(f"usbp-{s}-day", s, "07:00", "19:00", [f"{s}-day"]) for s in ZONES),
        *(_shift(f"usbp-{s}-night", s, "19:00", "07:00", [f"{s}-night"]) for s in ZONES),
        _shift("usbp-blaine-sup", "pac-blaine", "08:00", "16:00", ["sup"], level=1, days=["MO", "TU", "WE", "TH", "FR"]),
        _shift("rcmp-blaine-late", "pac-blaine", "22:00", "02:00", ["rcmp-late"], partner_id="rcmp", days=["SA", "SU"]),
        _shift("usbp-blaine-gap", "pac-blaine", "02:30", "04:00", ["gap"], level=2, valid_from="2025-03-09",
               valid_until="2025-03-09"),
    ],
    "overrides": [
        {"id": "xmas", "partner_id": "usbp", "sector_id": "pac-blaine", "start": "2025-12-25T03:00:00Z",
         "end": "2025-12-25T15:00:00Z", "contacts": ["sumas-desk"]},
        {"id": "xmas-late", "partner_id": "usbp", "sector_id": "pac-blaine", "start": "2025-12-25T00:00:00-08:00",
         "end": "2025-12-25T02:00:00-08:00", "contacts": ["bellingham-desk"]},
        {"id": "july-4", "partner_id": "usbp", "sector_id": "pac-blaine", "local": True, "start": "2025-07-04T12:00:00",
         "end": "2025-07-04T14:00:00", "contacts": "nobody"},
    ],
})


def _who(roster: Roster, sector: str, instant: str) -> list[tuple[str, int, str, tuple[str, ...]]]:
    return [(d.partner_id, d.level, d.source, d.contacts) for d in on_duty(roster, sector, datetime.fromisoformat(instant))]


DAY, NIGHT = ("usbp", 0, "shift", ("pac-blaine-day",)), ("usbp", 0, "shift", ("pac-blaine-night",))
SUP, LATE = ("usbp", 1, "shift", ("sup",)), ("rcmp", 0, "shift", ("rcmp-late",))


@pytest.mark.parametrize(("instant", "expected"), [
    ("2025-06-10T12:00:00-07:00", [DAY, SUP]),                  # Tuesday noon
    ("2025-06-10T19:00:00+00:00", [DAY, SUP]),                  # the same instant given in UTC
    ("2025-06-10T06:59:59-07:00", [NIGHT]),                     # Monday's night shift, end exclusive
    ("2025-06-10T07:00:00-07:00", [DAY]),
    ("2025-06-13T23:00:00-07:00", [NIGHT]),                     # Friday: the late shift runs SA, SU only
    ("2025-06-14T01:00:00-07:00", [NIGHT]),                     # ... so none from Friday past midnight
    ("2025-06-14T23:00:00-07:00", [LATE, NIGHT]),               # Saturday 22:00-02:00
    ("2025-06-15T01:59:00-07:00", [LATE, NIGHT]),               # Saturday's shift past midnight
    ("2025-06-16T01:30:00-07:00", [LATE, NIGHT]),               # Sunday's shift past midnight into Monday
    ("2025-06-17T01:30:00-07:00", [NIGHT]),
    ("2025-06-15T02:00:00-07:00", [NIGHT]),
])
def test_who_is_on_duty_across_midnight(instant: str, expected: list) -> None:
    assert _who(ROSTER, "pac-blaine", instant) == expected


@pytest.mark.parametrize(("instant", "expected"), [
    ("2025-12-24T18:59:00-08:00", [DAY]),
    ("2025-12-24T19:00:00-08:00", [("usbp", 0, "override", ("sumas-desk",))]),     # replaces the night shift
    ("2025-12-25T01:00:00-08:00", [("usbp", 0, "override", ("bellingham-desk",))]),  # overlapping: last listed wins
    ("2025-12-25T03:00:00-08:00", [("usbp", 0, "override", ("sumas-desk",))]),
    ("2025-12-25T07:00:00-08:00", [DAY]),
    ("2025-07-04T13:00:00-07:00", [SUP]),                       # stand-down of level 0 keeps the supervisor
    ("2025-07-04T14:00:00-07:00", [DAY, SUP]),
])
def test_overrides_win_over_shifts(instant: str, expected: list) -> None:
    assert _who(ROSTER, "pac-blaine", instant) == expected


@pytest.mark.parametrize("sector", ["pac-blaine", "gl-detroit", "prairie-emerson"])
@pytest.mark.parametrize(("night", "hours"), [("2025-03-08", 11), ("2025-06-14", 12), ("2025-11-01", 13)])
def test_night_shift_length_on_dst_nights(sector: str, night: str, hours: int) -> None:
    tz = ZoneInfo(ZONES[sector])
    evening = datetime.combine(date.fromisoformat(night), time(23), tz)
    (duty,) = [d for d in on_duty(ROSTER, sector, evening) if d.level == 0 and d.partner_id == "usbp"]
    assert duty.contacts == (f"{sector}-night",)
    assert duty.end - duty.start == timedelta(hours=hours)
    assert (duty.start.astimezone(tz).time(), duty.end.astimezone(tz).time()) == (time(19), time(7))
    assert [d.contacts for d in on_duty(ROSTER, sector, duty.end - timedelta(seconds=1)) if d.level == 0] == [duty.contacts]
    assert [d.contacts for d in on_duty(ROSTER, sector, duty.end) if d.level == 0] == [(f"{sector}-day",)]


@pytest.mark.parametrize(("instant", "night"), [
    ("2025-11-02T01:30:00-07:00", True),   # the first 01:30 (PDT) on the fall-back night
    ("2025-11-02T01:30:00-08:00", True),   # the repeated 01:30 (PST)
    ("2025-11-02T06:59:00-08:00", True),
    ("2025-03-09T01:59:59-08:00", True),   # just before the spring-forward gap
    ("2025-03-09T03:00:00-07:00", True),   # just after it
    ("2025-03-09T07:00:00-07:00", False),
])
def test_instants_in_repeated_and_skipped_hours(instant: str, night: bool) -> None:
    assert (NIGHT in _who(ROSTER, "pac-blaine", instant)) is night


def test_shift_starting_in_the_spring_forward_gap_starts_after_it() -> None:
    (gap,) = [d for d in on_duty(ROSTER, "pac-blaine", datetime(2025, 3, 9, 10, 45, tzinfo=UTC)) if d.level == 2]
    # 02:30 does not exist that night: read as 02:30 PST = 03:30 PDT, so the 02:30-04:00 shift lasts 30 min.
    assert (gap.start, gap.end) == (datetime(2025, 3, 9, 10, 30, tzinfo=UTC), datetime(2025, 3, 9, 11, 0, tzinfo=UTC))
    assert [d for d in on_duty(ROSTER, "pac-blaine", datetime(2025, 3, 16, 10, 45, tzinfo=UTC)) if d.level == 2] == []


ROTATION = Roster.model_validate({"timezones": ZONES, "rotations": [
    {"id": "watch", "partner_id": "rcmp", "sector_id": "pac-blaine", "anchor": "2025-01-06", "every_days": 2,
     "start": "06:00", "teams": [["A1", "A2"], ["B1"], ["C1"]]},
    {"id": "days", "partner_id": "rcmp", "sector_id": "gl-detroit", "level": 1, "anchor": "2025-01-06", "every_days": 1,
     "start": "08:00", "end": "18:00", "teams": [["X"], ["Y"]]},
]})


@pytest.mark.parametrize(("sector", "instant", "team"), [
    ("pac-blaine", "2025-01-06T05:59:00-08:00", ("C1",)),       # before the anchor the cycle runs backwards
    ("pac-blaine", "2025-01-06T06:00:00-08:00", ("A1", "A2")),
    ("pac-blaine", "2025-01-08T05:59:00-08:00", ("A1", "A2")),  # a block is 2 days of 24-hour watches
    ("pac-blaine", "2025-01-08T06:00:00-08:00", ("B1",)),
    ("pac-blaine", "2025-01-10T06:00:00-08:00", ("C1",)),
    ("pac-blaine", "2025-01-12T06:00:00-08:00", ("A1", "A2")),  # and round again
    ("gl-detroit", "2025-01-06T12:00:00-05:00", ("X",)),
    ("gl-detroit", "2025-01-07T12:00:00-05:00", ("Y",)),
    ("gl-detroit", "2025-01-08T12:00:00-05:00", ("X",)),
    ("gl-detroit", "2025-01-08T18:00:00-05:00", None),          # window 08:00-18:00 only
])
def test_rotation_cycles(sector: str, instant: str, team: tuple[str, ...] | None) -> None:
    duties = on_duty(ROTATION, sector, datetime.fromisoformat(instant))
    assert [d.contacts for d in duties] == ([team] if team else [])
    assert all(d.source == "rotation" for d in duties)


@pytest.mark.parametrize(("day", "hours"), [("2025-03-08", 23), ("2025-03-10", 24), ("2025-11-01", 25)])
def test_rotation_handover_watch_length_on_dst_days(day: str, hours: int) -> None:
    instant = datetime.combine(date.fromisoformat(day), time(12), ZoneInfo("America/Vancouver"))
    (duty,) = on_duty(ROTATION, "pac-blaine", instant)
    assert duty.end - duty.start == timedelta(hours=hours)


ICS = b"""BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//RCMP O Division//Duty//EN\r
X-WR-TIMEZONE:America/Toronto\r
BEGIN:VEVENT\r
UID:nights@rcmp.example.org\r
DTSTAMP:20250101T000000Z\r
DTSTART;TZID=America/Toronto:20250303T190000\r
DTEND;TZID=America/Toronto:20250304T070000\r
RRULE:FREQ=WEEKLY;BYDAY=MO,WE,SA;UNTIL=20250331T235959Z\r
SUMMARY:Night desk\r
ATTENDEE;CN=Cpl Lee:mailto:lee@rcmp.example.org\r
ATTENDEE;CN=Cst Roy:mailto:roy@rcmp.example.org\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:fortnight@rcmp.example.org\r
DTSTAMP:20250101T000000Z\r
DTSTART;TZID=America/Toronto:20250304T080000\r
DTEND;TZID=America/Toronto:20250304T160000\r
RRULE:FREQ=WEEKLY;INTERVAL=2;COUNT=3\r
X-IBET-LEVEL:1\r
SUMMARY:sgt-windsor\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:standdown@rcmp.example.org\r
DTSTAMP:20250101T000000Z\r
DTSTART:20250305T200000\r
DTEND:20250305T220000\r
SUMMARY:nobody\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:cancelled@rcmp.example.org\r
DTSTAMP:20250101T000000Z\r
DTSTART:20250306T200000Z\r
DTEND:20250306T220000Z\r
STATUS:CANCELLED\r
SUMMARY:x\r
END:VEVENT\r
END:VCALENDAR\r
"""


def test_ical_weekly_rrule_with_tzid_becomes_shifts(tmp_path: Path) -> None:
    (tmp_path / "duty.ics").write_bytes(ICS)
    nights, fortnight, standdown = import_ical(tmp_path / "duty.ics", "rcmp", "gl-detroit")
    assert isinstance(nights, Shift) and isinstance(fortnight, Shift) and isinstance(standdown, Override)
    assert (nights.days, nights.start, nights.end, nights.timezone) == (("MO", "WE", "SA"), time(19), time(7), "America/Toronto")
    assert nights.contacts == ("lee@rcmp.example.org", "roy@rcmp.example.org")
    assert (nights.valid_from, nights.valid_until) == (date(2025, 3, 3), date(2025, 3, 31))
    assert (fortnight.level, fortnight.every_weeks, fortnight.valid_until) == (1, 2, date(2025, 4, 1))
    assert standdown.start == datetime(2025, 3, 5, 20, tzinfo=ZoneInfo("America/Toronto"))  # X-WR-TIMEZONE
    roster = Roster(timezones=ZONES, shifts=(nights, fortnight), overrides=(standdown,))

    def who(instant: str) -> list[tuple[str, ...]]:
        return [d.contacts for d in on_duty(roster, "gl-detroit", datetime.fromisoformat(instant))]

    team = ("lee@rcmp.example.org", "roy@rcmp.example.org")
    assert who("2025-03-03T23:00:00-05:00") == [team]                    # Monday night
    assert who("2025-03-04T23:00:00-05:00") == []                        # Tuesday: not in BYDAY
    assert who("2025-03-05T21:00:00-05:00") == []                        # the stand-down
    assert who("2025-03-05T22:00:00-05:00") == [team]
    (night,) = on_duty(roster, "gl-detroit", datetime(2025, 3, 9, 3, 30, tzinfo=ZoneInfo("America/Toronto")))
    assert night.end - night.start == timedelta(hours=11)                # Saturday, spring forward
    assert who("2025-03-31T23:00:00-04:00") == [team]                    # before UNTIL (03:59:59 UTC next day)
    assert who("2025-04-02T23:00:00-04:00") == []                        # after UNTIL
    assert who("2025-03-04T12:00:00-05:00") == [("sgt-windsor",)]        # INTERVAL=2: weeks 0, 2, 4 (COUNT=3)
    assert who("2025-03-11T12:00:00-04:00") == []
    assert who("2025-03-18T12:00:00-04:00") == [("sgt-windsor",)]
    assert who("2025-04-01T12:00:00-04:00") == [("sgt-windsor",)]
    assert who("2025-04-15T12:00:00-04:00") == []


@pytest.mark.parametrize(("until", "last_day"), [
    ("20250331T235959Z", date(2025, 3, 31)),  # 19:59:59 EDT: the 19:00 occurrence that day starts before UNTIL
    ("20250331T220000Z", date(2025, 3, 30)),  # 18:00 EDT: it would start after UNTIL
    ("20250331", date(2025, 3, 31)),          # a date
])
def test_ical_until_is_the_last_start(until: str, last_day: date) -> None:
    ics = ICS.replace(b"UNTIL=20250331T235959Z", b"UNTIL=" + until.encode())
    assert import_ical(ics, "rcmp", "gl-detroit")[0].valid_until == last_day


@pytest.mark.parametrize(("line", "message"), [
    ("RRULE:FREQ=WEEKLY\r\nEXDATE;TZID=America/Toronto:20250310T190000", "(UID 'bad@x'): EXDATE: not supported"),
    ("RRULE:FREQ=MONTHLY", "(UID 'bad@x'): RRULE: only FREQ=WEEKLY"),
])
def test_ical_unsupported_events_name_the_uid(line: str, message: str) -> None:
    ics = ICS.replace(b"UID:nights@rcmp.example.org\r\n", b"UID:bad@x\r\n").replace(
        b"RRULE:FREQ=WEEKLY;BYDAY=MO,WE,SA;UNTIL=20250331T235959Z", line.encode())
    with pytest.raises(RegistryError, match=r"<bytes>: VEVENT\[0\] ") as err:
        import_ical(ics, "rcmp", "gl-detroit")
    assert message in str(err.value)


VALID = "shifts:\n  - {id: ok, partner_id: usbp, sector_id: pac-blaine, start: 19:00, end: 07:00, contacts: [desk]}\n"
SHIFT = "  - {id: bad, partner_id: usbp, sector_id: pac-blaine, start: 07:00, end: 19:00, contacts: [desk]}"
OVERRIDE = ("overrides:\n  - {id: bad-o, partner_id: usbp, sector_id: pac-blaine, start: 2025-07-01T08:00:00Z, "
            "end: 2025-07-01T09:00:00Z, contacts: nobody}")


@pytest.mark.parametrize(("appended", "message"), [
    ("", None),
    (OVERRIDE, None),
    (SHIFT.replace("usbp", "fbi"), "shifts[1] (id 'bad').partner_id: 'fbi' is not a known partner"),
    (SHIFT.replace("pac-blaine", "pac-nowhere"), "shifts[1] (id 'bad').sector_id: 'pac-nowhere' is not a known sector"),
    (SHIFT.replace("usbp", "sq"), "shifts[1] (id 'bad').sector_id: partner 'sq' does not cover sector 'pac-blaine'"),
    (SHIFT.replace("start: 07:00", "start: 25:00"), "shifts[1] (id 'bad').start: '25:00' is not a time of day 'HH:MM'"),
    (SHIFT.replace("end: 19:00", "end: 07:00"), "shifts[1] (id 'bad'): end: equals start"),
    (SHIFT.replace("[desk]", "[]"), "shifts[1] (id 'bad').contacts: Tuple should have at least 1 item"),
    (SHIFT.replace("contacts", "contact"), "shifts[1] (id 'bad').contact: unknown key"),
    (SHIFT.replace("}", ", days: [Monday]}"), "shifts[1] (id 'bad').days[0]: Input should be 'MO'"),
    (SHIFT.replace("id: bad", "id: ok"), "shifts[1] (id 'ok').id: already used by shifts[0]"),
    (OVERRIDE.replace("08:00:00Z", "08:00:00"), "overrides[0] (id 'bad-o'): start: no UTC offset"),
    (OVERRIDE.replace("09:00:00Z", "07:00:00Z"), "overrides[0] (id 'bad-o'): end: must be after start"),
    ("timezones: {pac-blaine: UTC}", "timezones: comes from the registry"),
])
def test_load_rosters_names_the_bad_entry(tmp_path: Path, appended: str, message: str | None) -> None:
    path = tmp_path / "rosters.yaml"
    path.write_text(VALID + appended + "\n")
    registry = load_registry(REPO / "config/registry.yaml")
    if message is None:
        assert isinstance(load_rosters(path, registry), Roster)
        return
    with pytest.raises(RegistryError) as err:
        load_rosters(path, registry)
    assert f"{path}: {message}" in str(err.value)


def test_shipped_example_roster() -> None:
    roster = load_rosters(REPO / "config/rosters.yaml", load_registry(REPO / "config/registry.yaml"))
    on_xmas_eve = _who(roster, "pac-blaine", "2025-12-24T23:00:00-08:00")
    assert ("usbp", 0, "override", ("sumas-station-night-desk",)) in on_xmas_eve
    assert ("cbsa", 0, "rotation", ("pacific-roc-desk",)) in on_xmas_eve
    during_exercise = _who(roster, "pac-blaine", "2026-05-12T10:00:00-07:00")  # the RCMP desk stands down
    assert [d for d in during_exercise if d[0] == "rcmp"] == [("rcmp", 1, "rotation", ("sgt-pacific-b",))]


def test_on_duty_rejects_naive_instants_and_unknown_sectors() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        on_duty(ROSTER, "pac-blaine", datetime(2025, 1, 1, 12))
    with pytest.raises(RegistryError, match="qc-derby"):
        on_duty(ROSTER, "qc-derby", datetime(2025, 1, 1, 12, tzinfo=UTC))


ROUND_THE_CLOCK = Roster.model_validate({"timezones": ZONES, "shifts": [
    *(_shift(f"bl-{a}", "pac-blaine", a, b, ["x"]) for a, b in [("07:00", "19:00"), ("19:00", "07:00")]),
    *(_shift(f"det-{a}", "gl-detroit", a, b, ["x"]) for a, b in [("02:00", "10:00"), ("10:00", "18:00"), ("18:00", "02:00")]),
], "rotations": [
    {"id": "emerson", "partner_id": "rcmp", "sector_id": "prairie-emerson", "anchor": "2024-02-29", "every_days": 3,
     "start": "01:30", "teams": [["a"], ["b"]]},
]})


@given(instant=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)),
       sector=st.sampled_from(sorted(ZONES)))
@example(instant=datetime(2025, 3, 9, 7, 0, tzinfo=UTC), sector="gl-detroit")         # 02:00 EST, skipped (a handover)
@example(instant=datetime(2025, 3, 9, 10, 0, tzinfo=UTC), sector="pac-blaine")        # 02:00 PST, skipped
@example(instant=datetime(2025, 11, 2, 6, 45, tzinfo=UTC), sector="prairie-emerson")  # 01:45 CDT, the first one
@example(instant=datetime(2025, 11, 2, 7, 45, tzinfo=UTC), sector="prairie-emerson")  # 01:45 CST, the repeat
@example(instant=datetime(2025, 11, 2, 9, 30, tzinfo=UTC), sector="pac-blaine")       # 01:30 PST, the repeat
def test_round_the_clock_roster_always_has_exactly_one_on_duty(instant: datetime, sector: str) -> None:
    duties = on_duty(ROUND_THE_CLOCK, sector, instant)
    assert len(duties) == 1
    assert duties[0].start <= instant < duties[0].end
