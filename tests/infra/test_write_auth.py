"""WriteAuth chooses the protected routes' authorizer in what SAM translates, not only in what the local gateway reads.

The template is translated with samtranslator for each WriteAuth value, and the translated
HttpApi's OpenAPI body is evaluated as CloudFormation would (its Fn::If under the stack's
parameters): its protected operations must carry AWS_IAM (SigV4) resp. the JWT authorizer
with the issuer and audience given, the listener routes no authorizer, and the loopback
gateway must protect exactly the routes the deployment protects.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from infra.authorizers import ANY_METHOD_KEY, IAM, JWT, NO_AUTH, Authorizer
from infra.http_gateway import routes_of_api
from infra.resources import LOCAL_REGION, LOCAL_STACK_NAME, LocalResources, Resolver
from infra.template import REPO_ROOT, TEMPLATE_PATH, functions, load_template
from infra.template_checks import translate

ISSUER = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Example"
AUDIENCE = "soundslike-web-client"
DEPLOYMENTS = {
    "iam": {"WriteAuth": "iam"},
    "jwt": {"WriteAuth": "jwt", "JwtIssuer": ISSUER, "JwtAudience": AUDIENCE},
}
# The integration's function: ${Name.Arn}, or ${NameAlias<alias>} for a function with AutoPublishAlias.
_FUNCTION_IN_URI = re.compile(r"/functions/\$\{(\w+?)(?:\.Arn|Alias\w+)\}/invocations")


def _deployed_routes(parameters: dict[str, str]) -> dict[str, tuple[str, Authorizer]]:
    """Route key -> (function, authorizer) as the translated HttpApi's body says, under ``parameters``."""
    translated = translate(TEMPLATE_PATH, parameters)
    resolver = Resolver(translated, LocalResources(), LOCAL_STACK_NAME, LOCAL_REGION, parameters=parameters)
    body = translated["Resources"]["HttpApi"]["Properties"]["Body"]
    schemes = {name: resolver.resolve(scheme) for name, scheme in body["components"]["securitySchemes"].items()}
    routes = {}
    for path, operations in body["paths"].items():
        for operation_key, operation in operations.items():
            method = "ANY" if operation_key == ANY_METHOD_KEY else operation_key.upper()
            (function,) = _FUNCTION_IN_URI.findall(operation["x-amazon-apigateway-integration"]["uri"]["Fn::Sub"])
            security = resolver.resolve(operation.get("security"))
            if not security:
                authorizer = Authorizer(NO_AUTH)
            else:
                ((name, scopes),) = security[0].items()
                assert scopes == []
                scheme = schemes[name]
                if scheme.get("x-amazon-apigateway-authtype") == "awsSigv4":
                    authorizer = Authorizer(IAM)
                else:
                    settings = scheme["x-amazon-apigateway-authorizer"]
                    assert settings["type"] == "jwt" and settings["identitySource"] == "$request.header.Authorization"
                    config = settings["jwtConfiguration"]
                    authorizer = Authorizer(JWT, config["issuer"], tuple(config["audience"]))
            # SAM writes the $default route (an event without Path and Method) as the path "$default".
            routes[path if path == "$default" else f"{method} {path}"] = (function, authorizer)
    return routes


def _protected_route_keys() -> set[str]:
    """Non-read routes that no function lists as open: those that change the catalogue or a person's history."""
    keys = set()
    for function in functions(load_template()).values():
        open_routes = set(function.get("Metadata", {}).get("OpenRoutes", []))
        for event in function["Properties"].get("Events", {}).values():
            if event["Type"] == "HttpApi":
                method = event["Properties"].get("Method", "ANY")
                key = f"{method} {event['Properties']['Path']}" if "Path" in event["Properties"] else "$default"
                if method not in ("GET", "HEAD", "OPTIONS") and key not in open_routes:
                    keys.add(key)
    return keys


@pytest.mark.parametrize("choice", sorted(DEPLOYMENTS))
def test_the_translated_template_guards_the_protected_routes_by_the_write_auth_choice(choice: str) -> None:
    parameters = DEPLOYMENTS[choice]
    deployed = _deployed_routes(parameters)
    protected = _protected_route_keys()
    assert "PUT /tracks/{trackId}" in protected
    guard = Authorizer(IAM) if choice == "iam" else Authorizer(JWT, ISSUER, (AUDIENCE,))
    for key, (_, authorizer) in deployed.items():
        assert authorizer == (guard if key in protected else Authorizer(NO_AUTH)), key
    assert deployed["PUT /tracks/{trackId}"][0] == "ApiWriteFunction"
    # Listener routes stay open whichever is chosen, writes included.
    assert deployed["POST /stations"] == ("ApiWriteFunction", Authorizer(NO_AUTH))
    assert deployed["POST /recommendations/by-audio"][1] == Authorizer(NO_AUTH)
    # The loopback gateway plays the same routes with the same authorizers.
    assert {route.key: (route.function, route.auth) for route in routes_of_api(load_template(), parameters)} == deployed


def test_the_jwt_authorizer_exists_only_when_chosen() -> None:
    for choice, parameters in DEPLOYMENTS.items():
        translated = translate(TEMPLATE_PATH, parameters)
        resolver = Resolver(translated, LocalResources(), LOCAL_STACK_NAME, LOCAL_REGION, parameters=parameters)
        schemes = translated["Resources"]["HttpApi"]["Properties"]["Body"]["components"]["securitySchemes"]
        assert (resolver.resolve(schemes["WriteJwt"]) is not None) == (choice == "jwt")


@pytest.mark.parametrize(
    ("parameters", "refused"),
    [
        ({"WriteAuth": "jwt", "JwtAudience": AUDIENCE}, ["WriteAuth=jwt needs JwtIssuer"]),
        ({"WriteAuth": "jwt", "JwtIssuer": ISSUER}, ["WriteAuth=jwt needs JwtAudience"]),
        (DEPLOYMENTS["jwt"], []),
        (DEPLOYMENTS["iam"], []),
    ],
    ids=["jwt-without-issuer", "jwt-without-audience", "jwt", "iam"],
)
def test_a_jwt_deployment_without_issuer_or_audience_is_refused_by_the_template_rules(
    parameters: dict[str, str], refused: list[str]
) -> None:
    translated = translate(TEMPLATE_PATH, parameters)
    resolver = Resolver(translated, LocalResources(), LOCAL_STACK_NAME, LOCAL_REGION, parameters=parameters)
    failed: list[str] = []
    rules: dict[str, Any] = translated["Rules"]
    for rule in rules.values():
        if resolver.resolve(rule.get("RuleCondition", True)):
            failed += [a["AssertDescription"] for a in rule["Assertions"] if not resolver.resolve(a["Assert"])]
    assert [text.split(",")[0] for text in failed] == refused


def test_the_api_document_marks_exactly_the_protected_routes_with_either_authorizer() -> None:
    document = json.loads((REPO_ROOT / "api" / "openapi.json").read_text())
    secured = {
        f"{method.upper()} {path}": operation["security"]
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if "security" in operation
    }
    assert set(secured) == _protected_route_keys()
    assert all(security == [{"sigv4": []}, {"jwt": []}] for security in secured.values())
