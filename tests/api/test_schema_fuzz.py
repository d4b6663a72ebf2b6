"""Schemathesis against the real server: no 500 and no answer outside the OpenAPI document it serves.

Bounded for CI (a few hundred requests); bench/fuzz_api.py runs the same with many more. The module's own server
has the generous rate limits of tests/support.py, so the fuzzer meets the handlers rather than 429s, and its log
holds only what the fuzzer caused.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator

import httpx
import pytest
import schemathesis

from opencall.api import openapi
from tests.api.helpers import stderr_text
from tests.api.schema_fuzz import Identity, Tally, fuzz, fuzz_operation, load_schema
from tests.support import Server, serve

MAX_EXAMPLES = 12  # per operation and generation mode: about 300 requests, ~15 s on the 2-core machine


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from serve(tmp_path_factory, "schema-fuzz")


def assert_no_traceback(server: Server) -> None:
    text = stderr_text(server)
    assert "Traceback" not in text and "Internal server error" not in text, text[-4000:]


def test_the_document_is_served(server: Server) -> None:
    response = httpx.get(f"{server.base_url}/api/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "public, max-age=3600"
    document = response.json()
    assert document == openapi.load()
    assert document["openapi"] == "3.1.0"
    assert document["info"]["version"] == httpx.get(f"{server.base_url}/api/server-info").json()["version"]


def test_every_operation_with_random_and_invalid_input(server: Server) -> None:
    tally, _ = fuzz(server, max_examples=MAX_EXAMPLES)
    operations = {label for label, _ in tally.operations.items()}
    assert len(operations) == len(list(load_schema(server).get_all_operations()))
    assert tally.inputs >= 150, tally
    assert 200 in tally.statuses and 400 in tally.statuses and 401 in tally.statuses, tally.statuses
    assert (tally.server_errors, tally.schema_breaks) == (0, 0)
    assert_no_traceback(server)


def test_the_checks_see_an_answer_the_document_does_not_allow(server: Server) -> None:
    """The same harness against a copy of the document that forgets the preview's 404: it must object."""
    document = copy.deepcopy(openapi.load())
    del document["paths"]["/api/invite/{token}/preview"]["get"]["responses"]["404"]
    schema = schemathesis.openapi.from_dict(document)
    schema.config.update(base_url=server.base_url)
    preview = next(op.ok() for op in schema.get_all_operations() if op.ok().path.endswith("/preview"))
    tally = Tally()
    fuzz_operation(preview, Identity(server), tally, max_examples=5, keep_going=True)
    assert tally.schema_breaks >= 1 and tally.server_errors == 0, tally
