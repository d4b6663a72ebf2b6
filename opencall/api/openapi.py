"""The OpenAPI 3.1 document of the HTTP API: ``openapi.yaml`` beside this module, shipped as package data."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

import yaml

from opencall import __version__

DOCUMENT = "openapi.yaml"


def load() -> dict[str, Any]:
    """The document as written, with ``info.version`` set to this server's version."""
    document: dict[str, Any] = yaml.safe_load(resources.files(__package__).joinpath(DOCUMENT).read_text("utf-8"))
    document["info"]["version"] = __version__
    return document


@cache
def as_json() -> bytes:
    """The document as the JSON that ``GET /api/openapi.json`` serves, built once per process."""
    return json.dumps(load(), ensure_ascii=False, separators=(",", ":")).encode()
