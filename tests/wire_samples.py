"""Sample wire messages shared by the unit and integration tests (valid, realistic values)."""

from __future__ import annotations

from ibet.messages import (
    Alert,
    AlertState,
    BorderEvent,
    BorderEventType,
    Detection,
    DetectionBatch,
    Direction,
    FrameMeta,
    Severity,
    Telemetry,
    TrackClass,
    TrackStatus,
    TrackUpdate,
)

T0 = 1_718_000_000_123_456_789  # 2024-06-10, ns


def telemetry() -> Telemetry:
    return Telemetry(
        precision_ts_us=T0 // 1_000,
        platform_heading_deg=359.5,
        platform_pitch_deg=-4.25,
        platform_roll_deg=12.0,
        sensor_lat_deg=49.0021,
        sensor_lon_deg=-122.7566,
        sensor_alt_m=152.4,
        sensor_rel_azimuth_deg=90.0,
        sensor_rel_elevation_deg=-45.0,
        sensor_rel_roll_deg=0.0,
        hfov_deg=62.2,
        vfov_deg=48.8,
        frame_center_lat_deg=49.0009,
        frame_center_lon_deg=-122.7551,
        frame_center_elev_m=18.5,
        slant_range_m=212.75,
    )


def frame_meta(**changes) -> FrameMeta:
    fields = dict(
        sensor_id="drone-07",
        sequence=42,
        capture_ts_ns=T0,
        ingest_ts_ns=T0 + 35_000_000,
        width_px=1920,
        height_px=1080,
        device_frame_id="F000042",
        telemetry=telemetry(),
    )
    return FrameMeta(**(fields | changes))


DETECTIONS = (
    Detection(box_xyxy_px=(10.0, 20.5, 110.0, 220.25), class_id=0, class_name="person", score=0.91, sensor_track_id=3),
    Detection(box_xyxy_px=(400.0, 300.0, 400.0, 300.0), class_id=2, class_name="vehicle", score=0.0),
)


def batch(detections: tuple[Detection, ...] = (), **changes) -> DetectionBatch:
    fields = dict(
        sensor_id="drone-07",
        sector_id="pacific-blaine",
        frame_sequence=42,
        capture_ts_ns=T0,
        image_width_px=1920,
        image_height_px=1080,
        model_name="ibet-demo-yolo",
        model_version="2024.06.1",
        detections=detections,
        telemetry=telemetry(),
        evidence_ref="evidence/drone-07/42.jpg",
    )
    return DetectionBatch(**(fields | changes))


def track(**changes) -> TrackUpdate:
    fields = dict(
        track_id="trk-pacific-blaine-17",
        sector_id="pacific-blaine",
        time_ts_ns=T0,
        lat_deg=49.0001,
        lon_deg=-122.7560,
        position_cov_m2=((4.0, 0.5), (0.5, 9.0)),
        velocity_east_mps=0.25,
        velocity_north_mps=-1.5,
        class_name=TrackClass.PERSON,
        class_probabilities={TrackClass.PERSON: 0.75, TrackClass.ANIMAL: 0.25},
        sensor_ids=("drone-07", "cam-peace-arch-2"),
        status=TrackStatus.CONFIRMED,
        border_side="CA",
        distance_to_border_m=11.5,
        version=5,
    )
    return TrackUpdate(**(fields | changes))


def event(**changes) -> BorderEvent:
    fields = dict(
        event_id="evt-0123456789abcdef",
        event_type=BorderEventType.CROSSING,
        track_id="trk-pacific-blaine-17",
        sector_id="pacific-blaine",
        event_ts_ns=T0,
        lat_deg=49.0002,
        lon_deg=-122.7561,
        direction=Direction.CA_TO_US,
        class_name=TrackClass.PERSON,
        confidence=0.8,
        sensor_ids=("drone-07",),
        evidence_refs=("evidence/drone-07/42.jpg",),
    )
    return BorderEvent(**(fields | changes))


def alert(**changes) -> Alert:
    fields = dict(
        alert_id="alr-0123456789abcdef",
        event_ids=("evt-0123456789abcdef",),
        sector_id="pacific-blaine",
        severity=Severity.HIGH,
        state=AlertState.OPEN,
        created_ts_ns=T0,
        updated_ts_ns=T0,
        title="Possible crossing CA to US",
        summary="1 person crossed near Peace Arch, heading south.",
        direction=Direction.CA_TO_US,
        lat_deg=49.0002,
        lon_deg=-122.7561,
        lead_partner_id="usbp-blaine",
        routed_partner_ids=("usbp-blaine", "rcmp-e-div"),
        escalation_level=0,
    )
    return Alert(**(fields | changes))
