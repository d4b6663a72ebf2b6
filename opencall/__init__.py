"""OpenCall: a self-hosted 1:1 calling appliance."""

__version__ = "0.2.0"
