"""Multi-target, multi-sensor tracker in metres on a local plane (x east, y north), in event time.

Stone Soup's shape: one small component per role, composed by :class:`Tracker`::

    tracker = Tracker(
        predictor=ConstantVelocityPredictor(process_noise_accel_mps2=1.0),
        updater=KalmanUpdater(),
        associator=MahalanobisGnnAssociator(gate_chi2=9.21),
        deleter=Deleter(coast_after_s=2.0, delete_after_s=8.0),
        reorder=ReorderBuffer(window_s=0.5),
        id_prefix="sector-7",
    )
    out = tracker.process([Measurement("cam-1", t_ns, (x_m, y_m), cov_m2, "person", 0.8)], time_ns=t_ns)
    state = tracker.to_state()               # JSON-ready; save it with the committed offsets
    tracker = Tracker.from_state(state)      # continues the same tracks with the same ids

Pure Python + NumPy + SciPy; no I/O, no clock. The caller converts lat/lon to the local plane.
"""

from fuse.tracking.associator import CHI2_2DOF_99, HINT_BONUS, MahalanobisGnnAssociator, pairwise_mahalanobis_sq
from fuse.tracking.classes import DEFAULT_CLASSES, ClassFusion
from fuse.tracking.deleter import Deleter
from fuse.tracking.exceptions import TrackerStateError, TrackingError
from fuse.tracking.initiator import MOfNInitiator
from fuse.tracking.predictor import ConstantVelocityPredictor
from fuse.tracking.reorder import Accepted, ReorderBuffer
from fuse.tracking.tracker import Tracker
from fuse.tracking.types import Measurement, Track, TrackerOutput, TrackStatus
from fuse.tracking.updater import KalmanUpdater, Update

__all__ = [
    "CHI2_2DOF_99",
    "DEFAULT_CLASSES",
    "HINT_BONUS",
    "Accepted",
    "ClassFusion",
    "ConstantVelocityPredictor",
    "Deleter",
    "KalmanUpdater",
    "MOfNInitiator",
    "MahalanobisGnnAssociator",
    "ReorderBuffer",
    "Measurement",
    "Track",
    "TrackStatus",
    "Tracker",
    "TrackerOutput",
    "TrackerStateError",
    "TrackingError",
    "Update",
    "pairwise_mahalanobis_sq",
]
