"""api/openapi.json against the implementation: schemathesis drives the loopback server."""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from infra.http_gateway import http_api_functions, routes_for_function
from infra.template import load_template

OPENAPI_PATH = Path(__file__).resolve().parents[2] / "api" / "openapi.json"
EXAMPLES_PER_OPERATION = 40
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_implementation_conforms_to_the_openapi_document(served_api, mode) -> None:
    url, _ = served_api
    schema = schemathesis.openapi.from_path(OPENAPI_PATH)
    operations = [result.ok() for result in schema.get_all_operations()]
    template = load_template()
    # Every HttpApi route of every function in the template is documented, and nothing else
    # ($default, API Gateway's catch-all answered 404 / 405, is no operation).
    assert {op.label for op in operations} == {
        route.key for function in http_api_functions(template) for route in routes_for_function(template, function)
    } - {"$default"}
    statuses: set[int] = set()
    for operation in operations:
        if mode is GenerationMode.NEGATIVE and not (len(operation.query) or len(operation.path_parameters)):
            continue  # nothing to make invalid
        strategy = operation.as_strategy(generation_mode=mode)

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def check(case: schemathesis.Case) -> None:
            response = case.call(base_url=url, timeout=10)
            statuses.add(response.status_code)
            case.validate_response(response, checks=CHECKS)

        check()
    assert 200 in statuses if mode is GenerationMode.POSITIVE else 400 in statuses
