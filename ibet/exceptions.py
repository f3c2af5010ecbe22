"""Errors shared by every ibet package; each package adds its own, derived from :class:`IbetError`."""


class IbetError(Exception):
    """Base of every error ibet raises on purpose."""


class MessageDecodeError(IbetError):
    """Bytes or headers from the bus are not a valid wire message; the message names the model and fields."""


class ConfigError(IbetError):
    """Configuration is missing or invalid; raised at start-up with what to fix."""


class RegistryError(IbetError):
    """The sensor/sector/partner registry is inconsistent or refers to something unknown."""
