"""GET /api/server-info and GET /api/openapi.json: what clients need to know about this box (no authentication)."""

from __future__ import annotations

from cryptography import x509
from sanic import Blueprint, Request
from sanic.response import HTTPResponse, json, raw

from opencall import __version__
from opencall.api import openapi
from opencall.api.context import services
from opencall.config import Config
from opencall.localca import LocalCA, Permits, common_name, fingerprint

bp = Blueprint("info", url_prefix="/api")


def _permitted(ca: x509.Certificate) -> list[str] | None:
    permits = Permits.of_ca(ca)
    return permits.describe() if permits else None


def local_ca_info(config: Config) -> dict[str, object]:
    """``ca`` (the local CA of /ca.crt) and ``previousCa`` (the one it replaced, during the transition)."""
    local = LocalCA.in_data_dir(config.data_dir)
    ca = local.read_ca_certificate()
    if ca is None:
        return {"ca": None, "previousCa": None}
    legacy = local.legacy_ca()
    return {
        "ca": {"name": common_name(ca), "fingerprint": fingerprint(ca), "permitted": _permitted(ca)},
        "previousCa": legacy and {"name": common_name(legacy), "fingerprint": fingerprint(legacy),
                                  "permitted": _permitted(legacy),
                                  "replaced": ca.not_valid_before_utc.date().isoformat()},
    }


@bp.get("/server-info")
async def server_info(request: Request) -> HTTPResponse:
    """``{"tls": "auto"|"off"|"files", "version": "…"}``, with ``ca`` and ``previousCa`` when ``tls`` is auto:
    the "Trust this box" page offers /ca.crt, shows its fingerprint and tells of a replaced CA."""
    config = services(request).config
    body: dict[str, object] = {"tls": config.server.tls.mode, "version": __version__}
    if config.server.tls.mode == "auto":
        body.update(local_ca_info(config))
    return json(body)


@bp.get("/openapi.json")
async def openapi_document(request: Request) -> HTTPResponse:
    """The OpenAPI 3.1 document of this API; the same for everyone until the server is upgraded."""
    return raw(openapi.as_json(), content_type="application/json",
               headers={"Cache-Control": "public, max-age=3600"})
