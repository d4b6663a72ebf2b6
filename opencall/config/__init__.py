"""The one config file (schema.py)."""

from opencall.config.schema import *  # noqa: F403
