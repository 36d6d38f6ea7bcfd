"""Server settings: the `Config` dataclass made from the options table
(`options.py`), where every option is declared."""

from __future__ import annotations

from .options import HTTP_MODES, INTERFACES, LOOPS, Config, ConfigError

__all__ = ["Config", "ConfigError", "HTTP_MODES", "INTERFACES", "LOOPS"]
