"""Building the detect stage from its settings: a verified model, the evidence store, the stage.

Everything that can be wrong with the set-up is found here, at start-up, with a message that says
what to fix: an unregistered model, a missing or tampered model file (naming the file and the
expected hash), a model whose classes differ from the registry, filters naming unknown classes.
"""

from __future__ import annotations

from detect.evidence import FilesystemEvidenceStore
from detect.stage import DetectStage
from ibet.detect_config import DetectSettings
from ibet.exceptions import ConfigError
from ibet.registry import Registry
from models.registry import DEFAULT_REGISTRY_PATH, ModelEntry, load_model_registry


def model_entry(settings: DetectSettings) -> ModelEntry:
    """The registry entry of the configured model (ModelError if it is not registered)."""
    registry = load_model_registry(settings.model_registry_path or DEFAULT_REGISTRY_PATH)
    return registry.get(settings.model, settings.model_version)


def build_detect_stage(settings: DetectSettings, registry: Registry, warm_up: bool = True) -> DetectStage:
    """The detect stage with the configured model, verified and (with ``warm_up``) run once."""
    from detect.model import UltralyticsDetector

    entry = model_entry(settings)
    unknown = sorted(set(settings.filters) - set(entry.classes))
    if unknown:
        raise ConfigError(f"detect.filters: {unknown} are not classes of model {entry.ref} (its classes: "
                          f"{list(entry.classes)})")
    detector = UltralyticsDetector(entry, settings.device, conf=settings.conf_floor, iou=settings.nms_iou,
                                   threads=settings.torch_threads)
    if warm_up:
        detector.warm_up()
    store = FilesystemEvidenceStore(settings.evidence.directory) if settings.evidence.enabled else None
    return DetectStage(registry, settings, detector, entry.name, entry.version, store)
