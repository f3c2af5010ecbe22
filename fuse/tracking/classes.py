"""Class fusion: a track's class probabilities from the class and score of each detection."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from ibet.messages import TrackClass

DEFAULT_CLASSES: tuple[str, ...] = tuple(c.value for c in TrackClass if c is not TrackClass.UNKNOWN)
"""person, vehicle, boat, animal: the wire contract's classes ("unknown" is the absence of evidence)."""


class ClassFusion:
    """Recursive Bayes over a fixed set of classes, with a confusion floor.

    A detection of class c with score s has likelihood s for c and (1 - s) / (K - 1) for each of
    the other K - 1 classes, with s clipped to [``confusion_floor``, 1 - ``confusion_floor``]: no
    single detection is ever certain, so a track can recover from a run of wrong labels. After
    each update every probability is lifted to at least ``min_probability`` (by mixing with the
    uniform distribution), so evidence cannot drive a class to exactly zero. A detection whose
    class is not one of ``classes`` leaves the probabilities unchanged. The track's class is the
    argmax (the first listed on a tie).

    Example: ``ClassFusion().update({}, "person", 0.9)`` -> ``{"person": 0.897, "vehicle": 0.034, "boat": 0.034, "animal": 0.034}``.
    """

    def __init__(
        self, classes: Sequence[str] = DEFAULT_CLASSES, confusion_floor: float = 0.05, min_probability: float = 1e-3
    ) -> None:
        classes = tuple(classes)
        if len(classes) < 2 or len(set(classes)) != len(classes) or not all(isinstance(c, str) and c for c in classes):
            raise ValueError(f"classes must be at least two distinct non-empty names, got {classes!r}")
        if not 0.0 <= confusion_floor < 0.5:
            raise ValueError(f"confusion_floor must be in [0, 0.5), got {confusion_floor!r}")
        if not 0.0 <= min_probability * len(classes) < 1.0:
            raise ValueError(f"min_probability must be in [0, 1/len(classes)), got {min_probability!r}")
        self.classes = classes
        self.confusion_floor = float(confusion_floor)
        self.min_probability = float(min_probability)

    def prior(self) -> dict[str, float]:
        """The uniform distribution over ``classes``."""
        return {c: 1.0 / len(self.classes) for c in self.classes}

    def update(self, probabilities: Mapping[str, float], class_name: str, score: float) -> dict[str, float]:
        """Posterior after one detection; ``probabilities`` empty means the uniform prior. Returns a new dict."""
        prior = {c: float(probabilities.get(c, 0.0)) for c in self.classes} if probabilities else self.prior()
        if class_name not in self.classes:
            return prior
        s = min(max(float(score), self.confusion_floor), 1.0 - self.confusion_floor)
        other = (1.0 - s) / (len(self.classes) - 1)
        posterior = {c: p * (s if c == class_name else other) for c, p in prior.items()}
        total = math.fsum(posterior.values())
        if total <= 0.0 or not math.isfinite(total):
            posterior, total = self.prior(), 1.0
        keep = 1.0 - self.min_probability * len(self.classes)
        return {c: keep * p / total + self.min_probability for c, p in posterior.items()}
