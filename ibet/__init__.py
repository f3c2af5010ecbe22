"""ibet: sensor-fusion pipeline for Integrated Border Enforcement Teams.

The shared package: wire contracts (:mod:`ibet.messages`), topics (:mod:`ibet.topics`), the bus
(:mod:`ibet.bus`), the stage runner (:mod:`ibet.runner`), configuration (:mod:`ibet.config`),
the sensor/sector/partner registry (:mod:`ibet.registry`), clocks and the ``ibet`` CLI.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ibet")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
