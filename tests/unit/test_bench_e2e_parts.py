"""The pure parts of ``ibet bench e2e``: tracing delivered alerts back to their frames, and the summary."""

from __future__ import annotations

from wire_samples import T0, alert, batch, event, track

from alerts.formats import alert_version
from ibet import topics
from ibet.bus.base import Record
from ibet.messages import AlertState, BorderEventType, Direction
from ibet_app.bench.e2e_sides import SideRun
from ibet_app.bench.e2e_summary import SideTotals, summarize, table_rows
from ibet_app.bench.e2e_trace import STAGES, Chain, frame_detect_ns, trace_chains, trigger_capture_ns

MS = 1_000_000
W = 1_700_000_000_000_000_000  # a wall-clock instant, ns


def _world():
    """One frame of drone-07 at T0 sent at W; its detections, an approach then a crossing event, an
    alert raised by the approach and updated by the crossing, each version delivered."""
    sent = {("drone-07", T0): W, ("drone-07", T0 + 500 * MS): W + 500 * MS}
    detections = [(W + 120 * MS, batch()), (W + 130 * MS, batch()),  # a redelivered duplicate: the first counts
                  (W + 640 * MS, batch(capture_ts_ns=T0 + 500 * MS, frame_sequence=43))]
    approach = event(event_id="evt-approach", event_type=BorderEventType.APPROACH)
    # the track crossed the line at T0 + 400 ms (interpolated); the frame at T0 + 500 ms put it 4 m deep
    crossing = event(event_id="evt-crossing", event_ts_ns=T0 + 400 * MS)
    events = [(W + 150 * MS, approach), (W + 660 * MS, crossing)]
    first = alert(event_ids=("evt-approach",))
    second = alert(event_ids=("evt-approach", "evt-crossing"), updated_ts_ns=T0 + 500 * MS)
    acked = second.model_copy(update={"state": AlertState.ACKNOWLEDGED, "updated_ts_ns": T0 + 900 * MS})
    alerts = [(W + 170 * MS, first), (W + 700 * MS, second), (W + 5000 * MS, acked)]
    arrivals = [(W + 200 * MS, first.alert_id, alert_version(first)),
                (W + 210 * MS, first.alert_id, alert_version(first)),  # the second partner: the first arrival counts
                (W + 750 * MS, second.alert_id, alert_version(second)),
                (W + 5100 * MS, acked.alert_id, alert_version(acked))]  # a state change, not a frame
    return sent, detections, events, alerts, arrivals, TRACKS


TRACKS = (track(time_ts_ns=T0 + 300 * MS, border_side="CA", distance_to_border_m=2.0),
          track(time_ts_ns=T0 + 450 * MS, border_side="US", distance_to_border_m=1.0),  # inside the hysteresis band
          track(time_ts_ns=T0 + 500 * MS, border_side="US", distance_to_border_m=4.0),  # the one that made the crossing
          track(time_ts_ns=T0 + 900 * MS, border_side="US", distance_to_border_m=9.0),
          track(track_id="trk-other", time_ts_ns=T0 + 420 * MS, border_side="US", distance_to_border_m=5.0))


def test_the_measurement_that_made_an_event():
    crossing = event(event_ts_ns=T0 + 400 * MS, direction=Direction.CA_TO_US)
    assert trigger_capture_ns(crossing, TRACKS, hysteresis_m=3.0) == T0 + 500 * MS
    assert trigger_capture_ns(crossing, TRACKS, hysteresis_m=5.0) == T0 + 900 * MS
    assert trigger_capture_ns(crossing, TRACKS, hysteresis_m=10.0) is None
    assert trigger_capture_ns(crossing.model_copy(update={"direction": Direction.US_TO_CA}), TRACKS, 3.0) is None
    approach = event(event_type=BorderEventType.APPROACH, event_ts_ns=T0 + 123)
    assert trigger_capture_ns(approach, (), 3.0) == T0 + 123


def test_each_event_triggered_version_is_traced_to_its_frame():
    trace = trace_chains(*_world())
    assert trace.untraced == {}
    assert [(c.event_type, c.total_ns) for c in trace.chains] == [("approach", 200 * MS), ("crossing", 250 * MS)]
    crossing = trace.chains[1]
    assert (crossing.detect_ns, crossing.fuse_ns, crossing.alerts_ns) == (W + 640 * MS, W + 660 * MS, W + 700 * MS)
    assert crossing.stage_ns() == {"detect": 140 * MS, "fuse": 20 * MS, "alerts": 40 * MS, "delivery": 50 * MS}


def test_what_cannot_be_traced_is_counted_by_reason():
    sent, detections, events, alerts, arrivals, tracks = _world()
    stranger = alert(alert_id="alr-not-on-topic")
    trace = trace_chains({k: v for k, v in sent.items() if k[1] == T0}, detections[:2], events, alerts,
                         [*arrivals, (W, stranger.alert_id, alert_version(stranger))], tracks)
    assert len(trace.chains) == 1
    assert trace.untraced == {"alert version not on ibet.alerts.v1": 1, "no frame sent with the event's capture time": 1}
    no_events = trace_chains(sent, detections, [], alerts, arrivals, tracks)
    assert no_events.chains == [] and no_events.untraced == {"event not on ibet.events.v1": 2}
    no_detections = trace_chains(sent, [], events, alerts, arrivals, tracks)
    assert no_detections.untraced == {"the frame's detections not on ibet.detections.v1": 2}
    no_tracks = trace_chains(sent, detections, events, alerts, arrivals)
    assert len(no_tracks.chains) == 1
    assert no_tracks.untraced == {"crossing: no track update deep on the destination side": 1}


def test_versions_no_frame_made_are_counted_apart():
    sent, detections, events, alerts, arrivals, tracks = _world()
    assert trace_chains(sent, detections, events, alerts, arrivals, tracks).not_frames == {"state change": 1}
    health = alert(kind="sensor_health", event_ids=("evt-approach",))
    trace = trace_chains(sent, detections, events, [(W, health)], [(W + MS, health.alert_id, alert_version(health))])
    assert trace.chains == [] and trace.untraced == {} and trace.not_frames == {"sensor_health": 1}
    lost = event(event_id="evt-lost", event_type=BorderEventType.LOST_NEAR_BORDER)
    grown = alert(event_ids=("evt-approach", "evt-lost"), updated_ts_ns=T0 + 1)
    trace = trace_chains(sent, detections, [*events, (W + 9000 * MS, lost)], [(W + 9001 * MS, grown)],
                         [(W + 9002 * MS, grown.alert_id, alert_version(grown))], tracks)
    assert trace.chains == [] and trace.untraced == {} and trace.not_frames == {"lost_near_border": 1}


def test_stages_add_up_to_the_total_when_a_boundary_is_out_of_order():
    # the alert record produced after the webhook arrived (delivery woken first), detections 0.4 ms
    # "before" the send (millisecond timestamps)
    chain = Chain("a", "crossing", "s", sent_ns=W, detect_ns=W - 400_000, fuse_ns=W + 30 * MS, alerts_ns=W + 90 * MS,
                  delivered_ns=W + 80 * MS)
    stages = chain.stage_ns()
    assert list(stages) == list(STAGES)
    assert min(stages.values()) >= 0 and sum(stages.values()) == chain.total_ns == 80 * MS
    assert stages == {"detect": 0, "fuse": 30 * MS, "alerts": 50 * MS, "delivery": 0}


def test_summary_shares_sum_to_one_and_empty_input_gives_none():
    empty = summarize([])
    assert empty["alerts_traced"] == 0 and empty["p50_ms"] is None and empty["detect_share"] is None
    chains = trace_chains(*_world()).chains
    summary = summarize(chains)
    assert summary["alerts_traced"] == 2
    assert summary["p50_ms"] == 225.0
    assert abs(sum(summary[f"{s}_share"] for s in STAGES) - 1.0) < 0.01
    assert summary["detect_share"] == round((120 + 140) / 450, 3)


def test_frame_detect_covers_every_detected_frame():
    sent, detections, *_ = _world()
    assert sorted(frame_detect_ns({**sent, ("drone-07", T0 + 10**9): W + 10**9}, detections)) == [120 * MS, 140 * MS]


def _record(topic: str, ts_ns: int, message) -> Record:
    return Record(topic, 0, 0, None, message.to_bytes(), (), ts_ns // MS)


def test_rounds_pool_per_scenario_and_the_table_has_a_row_each():
    sent, detections, events, alerts, arrivals, tracks = _world()
    run = SideRun("kafka", sent={"demo-scenario": sent}, arrivals=arrivals, records={
        topics.DETECTIONS: [_record(topics.DETECTIONS, t, m) for t, m in detections],
        topics.EVENTS: [_record(topics.EVENTS, t, m) for t, m in events],
        topics.ALERTS: [_record(topics.ALERTS, t, m) for t, m in alerts],
        topics.TRACKS: [_record(topics.TRACKS, 0, m) for m in tracks]})
    totals = SideTotals("kafka")
    totals.add(run, hysteresis_m=3.0)
    totals.add(run, hysteresis_m=3.0)  # a second round
    got = totals.summary("demo-scenario")
    assert (got["alerts_traced"], got["frames_sent"], got["frames_detected"]) == (4, 4, 4)
    assert (got["p50_ms"], got["frame_detect_p50_ms"]) == (225.0, 130.0)
    assert totals.summary() == {**got, "scenario": "all"}
    empty = SideTotals("embedded").summary("demo-scenario")
    rows = table_rows({"scenarios": ["demo-scenario"], "per_scenario": [got, empty], "sides": {}})
    assert rows[0][:5] == ["kafka", "demo-scenario", 4, 225.0, 250.0]
    assert rows[1] == ["embedded", "demo-scenario", 0, "-", "-", "-", "-", "-", "-", "0/0", "-"]
