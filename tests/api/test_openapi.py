"""opencall/api/openapi.yaml against docs/api.md (routes, 🔒, status codes, error shape) and against the route table of
the app that `opencall serve` builds: every HTTP route is in the document and every operation is a route."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from opencall.api import openapi
from tests.support import test_config

DOCS = Path(__file__).resolve().parents[2] / "docs"
# The routes that are not the HTTP API: the web app's pages and files, and Engine.IO's endpoint (Socket.IO is
# described in docs/api.md, not in an OpenAPI document).
NOT_API = {"index", "invite_page", "login_page", "register_page", "dashboard_page", "docs_page", "trust_page",
           "contact_page", "static", "socketio_bundle", "handle_request"}
ROUTES_SCRIPT = """
import json, sys
from opencall.app import create_app
from opencall.config import load_config
app = create_app(load_config(sys.argv[1]))
print(json.dumps([[route.name.rpartition(".")[2], "/" + route.path, sorted(route.methods)]
                  for route in app.router.routes]))
"""
ERROR_REF = "#/components/schemas/Error"
RATE_LIMITED = {"/api/auth/register", "/api/auth/login", "/api/contact", "/api/client-log"}  # rate_limits.*_per_ip


def openapi_path(path: str) -> str:
    """``/api/invite/:token`` (api.md) or ``/api/invite/<token:str>`` (Sanic) as ``/api/invite/{token}``."""
    return re.sub(r":(\w+)|<(\w+)(?::[^>]*)?>", lambda m: "{" + (m.group(1) or m.group(2)) + "}", path)


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return openapi.load()


def operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(method.upper(), path): operation for path, item in document["paths"].items()
            for method, operation in item.items()}


def resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """``node``, or what its ``$ref`` (a pointer into ``document``) names."""
    while "$ref" in node:
        ref = str(node["$ref"])
        assert ref.startswith("#/"), ref
        node = document
        for part in ref[2:].split("/"):
            node = node[part]
    return node


def api_md_table() -> dict[tuple[str, str], bool]:
    """The contract's REST table in docs/api.md: (method, path) → whether it is 🔒."""
    rows = re.findall(r"^\| (GET|POST) \| (/\S+) \| (.*?) \|", (DOCS / "api.md").read_text(), re.MULTILINE)
    return {(method, openapi_path(path)): "🔒" in auth for method, path, auth in rows}


def api_md_mentions() -> set[tuple[str, str]]:
    """Every ``METHOD /path`` of docs/api.md (the contract's table, its sections and this server's additions)."""
    text = (DOCS / "api.md").read_text()
    return {(method, openapi_path(path)) for method, path in re.findall(r"\b(GET|POST|PUT|DELETE) (/[\w/:.-]+)", text)}


def api_md_section_statuses() -> dict[tuple[str, str], set[str]]:
    """The status codes each ``### METHOD /path`` section of docs/api.md names."""
    text = (DOCS / "api.md").read_text()
    sections = re.split(r"^### ", text, flags=re.MULTILINE)[1:]
    found: dict[tuple[str, str], set[str]] = {}
    for section in sections:
        heading, _, body = section.partition("\n")
        match = re.match(r"(GET|POST|PUT|DELETE) (/\S+)", heading)
        if match:
            found[(match.group(1), openapi_path(match.group(2)))] = set(re.findall(r"`([2-5]\d\d)\b", body))
    return found


def route_table(tmp_path: Path) -> set[tuple[str, str]]:
    """(method, path) of every HTTP API route of the installed app, built as `opencall serve` builds it."""
    config = tmp_path / "opencall.yaml"
    config.write_text(yaml.safe_dump(test_config(tmp_path)))
    result = subprocess.run([sys.executable, "-c", ROUTES_SCRIPT, str(config)], cwd="/", capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    routes = json.loads(result.stdout.splitlines()[-1])
    names = {name for name, _, _ in routes}
    assert names >= NOT_API, f"routes named in NOT_API are gone: {NOT_API - names}"
    return {(method, openapi_path(path)) for name, path, methods in routes if name not in NOT_API
            for method in methods}


def test_every_route_is_documented_and_every_operation_is_a_route(document: dict[str, Any], tmp_path: Path) -> None:
    assert set(operations(document)) == route_table(tmp_path)


def test_the_api_routes_are_those_of_docs_api_md(document: dict[str, Any]) -> None:
    api = {key for key in operations(document) if key[1].startswith("/api/")}
    assert api == {key for key in api_md_mentions() if key[1].startswith("/api/")}
    assert set(api_md_table()) <= api


def test_operator_routes_are_those_of_docs_operations_md(document: dict[str, Any]) -> None:
    text = (DOCS / "operations.md").read_text()
    for method, path in operations(document):
        if not path.startswith("/api/"):
            assert method == "GET" and f"{path}`" in text, (method, path)


def test_locked_routes_need_credentials(document: dict[str, Any]) -> None:
    """🔒 in api.md ⇔ no anonymous alternative in ``security`` and a 401 answer."""
    ops = operations(document)
    for key, locked in api_md_table().items():
        operation = ops[key]
        anonymous = {} in operation.get("security", [{}])
        assert anonymous is not locked, key
        assert ("401" in operation["responses"]) is (locked or key == ("POST", "/api/auth/login")), key


def test_the_statuses_of_docs_api_md_are_documented(document: dict[str, Any]) -> None:
    ops = operations(document)
    sections = api_md_section_statuses()
    assert len(sections) >= len(api_md_table()), "a contract route lost its section in docs/api.md"
    for key, statuses in sections.items():
        assert statuses <= set(ops[key]["responses"]), (key, statuses)
    for (method, path), operation in ops.items():
        responses = set(operation["responses"])
        if "requestBody" in operation:
            assert "400" in responses, (method, path)  # malformed JSON, not an object, a bad field
        if method in {"POST", "PUT", "DELETE"} and path.startswith("/api/"):
            assert "403" in responses, (method, path)  # cross-site refusal
        if method in {"POST", "PUT"} and path.startswith("/api/"):
            assert "413" in responses, (method, path)  # the 64 KiB body limit
        assert ("429" in responses) is (path in RATE_LIMITED), (method, path)


def test_every_error_is_the_error_object(document: dict[str, Any]) -> None:
    error = document["components"]["schemas"]["Error"]
    assert error["required"] == ["error"] and error["additionalProperties"] is False
    for key, operation in operations(document).items():
        for status, response in operation["responses"].items():
            content = resolve(document, response)["content"]
            if status.startswith(("4", "5")) and status != "503":
                assert content == {"application/json": {"schema": {"$ref": ERROR_REF}}}, (key, status)
            else:
                assert content, (key, status)
