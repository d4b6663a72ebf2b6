"""The one config file: what it holds (model), what each key accepts (schema), and which file is read (load).

``from opencall.config import Config, load_config, ...`` is the way in; the submodules are its parts.
"""

from opencall.config.load import (
    ENV_CONFIG,
    SYSTEM_CONFIG,
    ConfigChoice,
    check_files,
    choose_config,
    find_config,
    load_config,
)
from opencall.config.model import (
    ClientLogConfig,
    Config,
    IceConfig,
    MdnsConfig,
    MetricsConfig,
    RateLimits,
    ServerConfig,
    SignalingConfig,
    TlsConfig,
    TurnConfig,
)
from opencall.config.schema import ConfigError, parse_config

__all__ = [
    "ENV_CONFIG",
    "SYSTEM_CONFIG",
    "ClientLogConfig",
    "Config",
    "ConfigChoice",
    "ConfigError",
    "IceConfig",
    "MdnsConfig",
    "MetricsConfig",
    "RateLimits",
    "ServerConfig",
    "SignalingConfig",
    "TlsConfig",
    "TurnConfig",
    "check_files",
    "choose_config",
    "find_config",
    "load_config",
    "parse_config",
]
