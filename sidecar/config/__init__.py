"""
Configuration: one TOML file, with the Go Sidecar's environment variables
as overrides.  See C{docs/configuration.md}.
"""

from .loader import KEYS, ConfigError, Key, loadConfig
from .model import (
    ApiConfig,
    Config,
    DiscoveryConfig,
    EnvoyConfig,
    HaproxyConfig,
    HealthConfig,
    ListenersConfig,
    LogConfig,
    NodeConfig,
)
from .values import Address, parseAddress, parseDuration

__all__ = [
    "KEYS",
    "Address",
    "ApiConfig",
    "Config",
    "ConfigError",
    "DiscoveryConfig",
    "EnvoyConfig",
    "HaproxyConfig",
    "HealthConfig",
    "Key",
    "ListenersConfig",
    "LogConfig",
    "NodeConfig",
    "loadConfig",
    "parseAddress",
    "parseDuration",
]
