"""Which config file a command reads, and reading it: ``--config``, ``$OPENCALL_CONFIG``, the installed file,
or the embedded defaults."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from opencall.config.model import Config
from opencall.config.schema import ConfigError, parse_config

ENV_CONFIG = "OPENCALL_CONFIG"
SYSTEM_CONFIG = Path("/etc/opencall/opencall.yaml")  # the .deb's config


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Read the config file at ``path`` (or ``$OPENCALL_CONFIG``); the embedded defaults when neither is set."""
    chosen = path if path is not None else os.environ.get(ENV_CONFIG) or None
    if chosen is None:
        return parse_config({}, Path.cwd())
    file = Path(chosen).expanduser().resolve()
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"config: cannot read {file}: {exc.strerror or exc}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"config: {file} is not valid YAML{where}") from None
    return parse_config(raw, file.parent, source=file)


@dataclass(frozen=True)
class ConfigChoice:
    """Which config a command reads: ``path`` (None: the embedded defaults) and where that choice came from."""

    path: Path | None
    origin: str  # "--config", "$OPENCALL_CONFIG", "the installed config" or "" for the embedded defaults


def choose_config(cli_value: str | os.PathLike[str] | None, env: Mapping[str, str],
                  system_config_exists: bool) -> ConfigChoice:
    """The lookup order of every command: ``--config``, else ``$OPENCALL_CONFIG``, else
    /etc/opencall/opencall.yaml when it exists, else the embedded defaults."""
    if cli_value is not None:
        return ConfigChoice(Path(cli_value), "--config")
    if env.get(ENV_CONFIG):
        return ConfigChoice(Path(env[ENV_CONFIG]), f"${ENV_CONFIG}")
    if system_config_exists:
        return ConfigChoice(SYSTEM_CONFIG, "the installed config")
    return ConfigChoice(None, "")


def find_config(cli_value: str | os.PathLike[str] | None) -> tuple[Config, str]:
    """The config a command uses (:func:`choose_config` on this host) and the line that names it, e.g.
    ``config: /etc/opencall/opencall.yaml (the installed config)``."""
    choice = choose_config(cli_value, os.environ, SYSTEM_CONFIG.exists())
    if choice.path is None:
        return (parse_config({}, Path.cwd()),
                f"config: embedded defaults (no --config, no ${ENV_CONFIG}, no {SYSTEM_CONFIG})")
    config = load_config(choice.path)
    return config, f"config: {config.source} ({choice.origin})"


def check_files(config: Config) -> None:
    """Raise ConfigError naming the key when a file the config points at cannot be read (the operator's
    certificate and key); the rest of the config is checked when it is parsed."""
    tls = config.server.tls
    if tls.mode != "files":
        return
    for key, path in (("server.tls.cert", tls.cert), ("server.tls.key", tls.key)):
        assert path is not None
        try:
            with path.open("rb"):
                pass
        except OSError as exc:
            raise ConfigError(f"{key}: cannot read {path}: {exc.strerror or exc}") from None
