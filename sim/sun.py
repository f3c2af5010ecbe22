"""Where the sun is: azimuth and elevation from time and place (NOAA's low-precision formulas,
good to a fraction of a degree, which is all shadows in a synthetic frame need)."""

from __future__ import annotations

import math
from datetime import UTC, datetime


def sun_position(when: datetime, lat_deg: float, lon_deg: float) -> tuple[float, float]:
    """(azimuth_deg clockwise from north, elevation_deg above the horizon) of the sun.

    >>> az, el = sun_position(datetime(2026, 6, 21, 20, 0, tzinfo=UTC), 49.0, -122.75)  # 13:00 PDT
    >>> 150 < az < 200 and 60 < el < 65
    True
    """
    t = when.astimezone(UTC)
    day_of_year = t.timetuple().tm_yday
    hour = t.hour + t.minute / 60 + t.second / 3600
    gamma = 2 * math.pi / 365 * (day_of_year - 1 + (hour - 12) / 24)
    eq_time_min = 229.18 * (0.000075 + 0.001868 * math.cos(gamma) - 0.032077 * math.sin(gamma)
                            - 0.014615 * math.cos(2 * gamma) - 0.040849 * math.sin(2 * gamma))
    decl = (0.006918 - 0.399912 * math.cos(gamma) + 0.070257 * math.sin(gamma) - 0.006758 * math.cos(2 * gamma)
            + 0.000907 * math.sin(2 * gamma) - 0.002697 * math.cos(3 * gamma) + 0.00148 * math.sin(3 * gamma))
    true_solar_min = hour * 60 + eq_time_min + 4 * lon_deg
    hour_angle = math.radians(true_solar_min / 4 - 180)
    lat = math.radians(lat_deg)
    cos_zenith = math.sin(lat) * math.sin(decl) + math.cos(lat) * math.cos(decl) * math.cos(hour_angle)
    zenith = math.acos(max(-1.0, min(1.0, cos_zenith)))
    azimuth = math.degrees(math.atan2(math.sin(hour_angle),
                                      math.cos(hour_angle) * math.sin(lat) - math.tan(decl) * math.cos(lat))) + 180
    return azimuth % 360, 90 - math.degrees(zenith)
