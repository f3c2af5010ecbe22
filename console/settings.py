"""The console's typed settings (one section of the configuration, validated at start-up)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class ConsoleSettings(BaseModel):
    """How the console listens, keeps sessions, throttles log-ins and retains detections."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(default="127.0.0.1", description="listen address of the web console")
    port: int = Field(default=8090, ge=0, le=65535, description="0 picks a free port")
    cookie_secure: bool = Field(default=True, description="session cookie only over HTTPS; false for plain-HTTP tests")
    session_idle_s: float = Field(default=8 * 3600.0, gt=0, description="a session unused this long ends")
    session_max_s: float = Field(default=24 * 3600.0, gt=0, description="a session ends this long after log-in")
    login_max_failures: int = Field(default=5, gt=0, description="failed log-ins allowed per user or address ...")
    login_window_s: float = Field(default=900.0, gt=0, description="... within this window, then 429")
    retention_days: float = Field(default=30.0, gt=0,
                                  description="detections and evidence not linked to an alert or case are purged after this")
    evidence_dir: Path = Field(default=Path("var/evidence"), description="root that evidence references are relative to")
    live_poll_s: float = Field(default=0.5, gt=0, description="how often the live stream looks for changes")
    alert_list_limit: int = Field(default=200, gt=0, description="most recent alerts shown on the operator list")
