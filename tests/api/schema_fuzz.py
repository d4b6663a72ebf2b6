"""Schemathesis against a running ``opencall serve``: every operation of the OpenAPI document the server serves at
``/api/openapi.json``, with positive and negative data, checked for server errors and for answers that break the
document. Shared by tests/api/test_schema_fuzz.py (bounded) and bench/fuzz_api.py (many more examples).

Requests go out as four kinds of client, drawn by Hypothesis: with the account's API key (``x-api-key``), as a
bearer token, with the session cookie, or with nothing. :class:`Identity` keeps the account's credentials valid
while the fuzzer rotates the key, logs out, or signs in to a new account: it adopts whatever the server hands out.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup, ServerError
from schemathesis.openapi.checks import JsonSchemaError
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support import Server, api_key, register

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
AUTH_MODES = ("api-key", "bearer", "cookie", "none")
SESSION_COOKIE = "opencall_session"
PASSWORD = "secret123"


def load_schema(server: Server) -> schemathesis.BaseSchema:
    """The document as the server serves it, aimed at that server."""
    schema = schemathesis.openapi.from_url(f"{server.base_url}/api/openapi.json")
    schema.config.update(base_url=server.base_url)
    return schema


class Identity:
    """An account's API key and session cookie, kept valid through what the fuzzer does to them."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.http, self.username = register(server, password=PASSWORD)
        self.key = api_key(self.http)
        self.session = self.http.cookies[SESSION_COOKIE]

    def headers(self, mode: str) -> dict[str, str]:
        if mode == "api-key":
            return {"x-api-key": self.key}
        if mode == "bearer":
            return {"Authorization": f"Bearer {self.key}"}
        if mode == "cookie":
            return {"Cookie": f"{SESSION_COOKIE}={self.session}"}
        return {}

    def adopt(self, case: Case, mode: str, response: schemathesis.Response) -> None:
        """Follow a rotated key, a new session, or a logout that ended ours."""
        if case.operation.path == "/api/key/regenerate" and response.status_code == 200 and mode != "none":
            self.key = response.json()["apiKey"]
        for header in response.headers.get("set-cookie", []):
            name, _, rest = header.partition("=")
            if name.strip() != SESSION_COOKIE:
                continue
            token = rest.split(";", 1)[0]
            if token:
                self.session = token  # a new sign-in; with our cookie it ended our old session
            elif mode == "cookie":
                self.session = self._login()  # our session was logged out

    def _login(self) -> str:
        response = httpx.post(f"{self.server.base_url}/api/auth/login", timeout=10,
                              json={"username": self.username, "password": PASSWORD})
        assert response.status_code == 200, response.text
        return response.cookies[SESSION_COOKIE]


@dataclass
class Tally:
    """What a fuzzing run sent and found."""

    inputs: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    operations: Counter[str] = field(default_factory=Counter)
    server_errors: int = 0
    schema_breaks: int = 0
    other_failures: int = 0
    examples: list[str] = field(default_factory=list)

    def record(self, group: FailureGroup) -> None:
        for failure in group.exceptions:
            if isinstance(failure, ServerError):
                self.server_errors += 1
            elif isinstance(failure, JsonSchemaError) or "conformance" in " ".join(getattr(failure, "checks", ())):
                self.schema_breaks += 1
            else:
                self.other_failures += 1
        if len(self.examples) < 20:
            self.examples.append(str(group))


def operations(schema: schemathesis.BaseSchema) -> Iterator[Any]:
    for result in schema.get_all_operations():
        yield result.ok()


def fuzz_operation(operation: Any, identity: Identity, tally: Tally, *, max_examples: int,
                   keep_going: bool = False) -> None:
    """``max_examples`` positive and as many negative cases for one operation, each with a drawn client.

    A failure is raised at once (Hypothesis shrinks it) unless ``keep_going``, which counts it and goes on."""
    modes = st.sampled_from(AUTH_MODES)
    # Negative data needs something to break: a body (a path parameter is any string; most have neither).
    negative = bool(operation.body)
    for generation in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)[:2 if negative else 1]:

        @settings(max_examples=max_examples, deadline=None, database=None, derandomize=False,
                  suppress_health_check=list(HealthCheck), report_multiple_bugs=False)
        @given(case=operation.as_strategy(generation_mode=generation), mode=modes)
        def run(case: Case, mode: str) -> None:
            headers = identity.headers(mode)
            response = case.call(headers=headers)
            identity.adopt(case, mode, response)
            tally.inputs += 1
            tally.statuses[response.status_code] += 1
            tally.operations[operation.label] += 1
            try:
                case.validate_response(response, checks=CHECKS, headers=headers)
            except FailureGroup as group:
                tally.record(group)
                if not keep_going:
                    raise

        run()


def fuzz(server: Server, *, max_examples: int, keep_going: bool = False) -> tuple[Tally, float]:
    """Every operation of the served document; the tally and the seconds it took."""
    schema = load_schema(server)
    identity = Identity(server)
    tally = Tally()
    started = time.monotonic()
    for operation in operations(schema):
        fuzz_operation(operation, identity, tally, max_examples=max_examples, keep_going=keep_going)
    return tally, time.monotonic() - started
