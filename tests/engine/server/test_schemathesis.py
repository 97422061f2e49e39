"""Schemathesis against the served ``/openapi.json``: generated requests to every operation, a
bounded number each; no 5xx, and every response matches the document (status, type, schema)."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

EXAMPLES_PER_OPERATION = 6
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

pytestmark = pytest.mark.slow


def test_generated_requests_get_documented_answers(server):
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json", headers=server.headers)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 14
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case) -> None:
            case.call_and_validate(base_url=server.url, headers=server.headers, checks=CHECKS, timeout=120)

        check()
