"""ibet: sensor-fusion pipeline for Integrated Border Enforcement Teams.

The kernel every stage stands on: wire contracts (:mod:`ibet.messages`), topics (:mod:`ibet.topics`),
the bus (:mod:`ibet.bus`), the stage runner (:mod:`ibet.runner`), configuration (:mod:`ibet.config`),
the sensor/sector/partner registry (:mod:`ibet.registry`), clocks, border geometry, KLV, the database
and its migrations, and the CLI's shared helpers (:mod:`ibet.cli_support`). It imports no stage; the
application shell that composes the stages is :mod:`ibet_app`.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ibet")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
