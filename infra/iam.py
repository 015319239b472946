"""Local IAM: is an AWS call a function makes allowed by that function's policy in template.yaml?

moto enforces no IAM (and its optional enforcement checks actions, not resources),
so the tests record every call a handler makes (tests/iam_recorder.py) and ask
this module. A call becomes the IAM requests AWS would authorise (action,
resource ARN, condition keys; one call can need several, e.g. BatchGetItem on
two tables); each is evaluated against the function's role in the
*translated* template, with the template's intrinsics resolved to the names
the running code was given (its environment variables, as the local stack or
a test set them) and IAM's semantics: case-insensitive actions, `*` and `?`
wildcards, an explicit Deny beating any Allow, conditions that must all hold.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from infra.resources import LOCAL_ACCOUNT_ID, LocalResources, Resolver
from infra.template import TEMPLATE_PATH, functions, load_template

# Operations whose IAM action is not "<prefix>:<OperationName>" (Service Authorization Reference).
ACTION_OF_OPERATION: dict[tuple[str, str], str] = {
    ("s3", "HeadObject"): "s3:GetObject",
    ("s3", "HeadBucket"): "s3:ListBucket",
    ("s3", "ListObjects"): "s3:ListBucket",
    ("s3", "ListObjectsV2"): "s3:ListBucket",
    ("s3", "ListObjectVersions"): "s3:ListBucketVersions",
    ("s3", "CreateMultipartUpload"): "s3:PutObject",
    ("s3", "UploadPart"): "s3:PutObject",
    ("s3", "CompleteMultipartUpload"): "s3:PutObject",
    ("s3", "ListMultipartUploads"): "s3:ListBucketMultipartUploads",
    ("s3", "ListParts"): "s3:ListMultipartUploadParts",
    ("s3", "DeleteObjects"): "s3:DeleteObject",
    ("s3", "GetBucketLocation"): "s3:GetBucketLocation",
    ("sqs", "SendMessageBatch"): "sqs:SendMessage",
    ("sqs", "DeleteMessageBatch"): "sqs:DeleteMessage",
    ("sqs", "ChangeMessageVisibilityBatch"): "sqs:ChangeMessageVisibility",
}
# botocore service name -> IAM service prefix, where they differ.
IAM_PREFIX = {"dynamodbstreams": "dynamodb"}
# Calls every principal may make whatever its policy says.
ALWAYS_ALLOWED = frozenset({"sts:GetCallerIdentity"})
S3_OBJECT_OPERATIONS_WITHOUT_KEY = frozenset({"DeleteObjects"})
TRANSACT_ACTIONS = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem", "ConditionCheck": "ConditionCheckItem"}


@dataclass(frozen=True)
class Request:
    """One IAM authorisation request: what a call needs allowed."""

    action: str
    resource: str
    context: tuple[tuple[str, str], ...] = ()

    def describe(self) -> str:
        extra = "".join(f", {k}={v!r}" for k, v in self.context)
        return f"{self.action} on {self.resource}{extra}"


@dataclass(frozen=True)
class Decision:
    request: Request
    allowed: bool
    reason: str


def _arn(service: str, region: str, account: str, resource: str) -> str:
    return f"arn:aws:{service}:{region}:{account}:{resource}"


def _table_arn(name: str, region: str, account: str) -> str:
    return name if name.startswith("arn:") else _arn("dynamodb", region, account, f"table/{name}")


def _queue_arn(url: str, region: str) -> str:
    parts = [p for p in urlsplit(url).path.split("/") if p]
    account, name = (parts[-2], parts[-1]) if len(parts) >= 2 else (LOCAL_ACCOUNT_ID, parts[-1])
    return _arn("sqs", region, account, name)


def secret_arn(secret_id: str, region: str, account: str = LOCAL_ACCOUNT_ID) -> str:
    """A secret's ARN from its ARN or name (both sides of a check go through this, so a name matches itself)."""
    return secret_id if secret_id.startswith("arn:") else _arn("secretsmanager", region, account, f"secret:{secret_id}")


def parameter_arn(name: str, region: str, account: str = LOCAL_ACCOUNT_ID) -> str:
    """SSM's ARN for a parameter name: `parameter/` + the name without its leading slash, if any."""
    return _arn("ssm", region, account, "parameter/" + name.lstrip("/"))


def requests_for_call(service: str, operation: str, params: Mapping[str, Any], region: str,
                      account: str = LOCAL_ACCOUNT_ID) -> list[Request]:
    """The IAM requests AWS authorises for one API call."""
    prefix = IAM_PREFIX.get(service, service)
    action = ACTION_OF_OPERATION.get((service, operation), f"{prefix}:{operation}")
    if action in ALWAYS_ALLOWED:
        return []
    if prefix == "dynamodb":
        return _dynamodb_requests(operation, action, params, region, account)
    if service == "s3":
        bucket = params.get("Bucket", "")
        if "Key" in params:
            requests = [Request(action, f"arn:aws:s3:::{bucket}/{params['Key']}")]
            if operation == "CopyObject":
                source = params["CopySource"]
                source = source if isinstance(source, str) else f"{source['Bucket']}/{source['Key']}"
                requests.append(Request("s3:GetObject", f"arn:aws:s3:::{source.lstrip('/')}"))
            return requests
        if operation in S3_OBJECT_OPERATIONS_WITHOUT_KEY:
            return [Request(action, f"arn:aws:s3:::{bucket}/{o['Key']}") for o in params["Delete"]["Objects"]]
        context = (("s3:prefix", str(params.get("Prefix", ""))),) if action == "s3:ListBucket" else ()
        return [Request(action, f"arn:aws:s3:::{bucket}", context)]
    if service == "sqs":
        if "QueueUrl" in params:
            return [Request(action, _queue_arn(params["QueueUrl"], region))]
        if "QueueName" in params:
            return [Request(action, _arn("sqs", region, params.get("QueueOwnerAWSAccountId", account), params["QueueName"]))]
    if service == "sns":
        arn = params.get("TopicArn") or params.get("TargetArn")
        if arn:
            return [Request(action, arn)]
    if service == "secretsmanager" and "SecretId" in params:
        return [Request(action, secret_arn(params["SecretId"], region, account))]
    if service == "ssm":
        names = [params["Name"]] if "Name" in params else list(params.get("Names", []))
        if "Path" in params:
            # GetParametersByPath is authorised on the path itself (parameter/a/b), not on what lies under it.
            names = [params["Path"].rstrip("/")]
        if names:
            return [Request(action, parameter_arn(n, region, account)) for n in names]
    if service == "lambda" and "FunctionName" in params:
        name = params["FunctionName"]
        return [Request(action, name if name.startswith("arn:") else _arn("lambda", region, account, f"function:{name}"))]
    # No resource-level form known here: AWS evaluates these against "*".
    return [Request(action, "*")]


def _dynamodb_requests(operation: str, action: str, params: Mapping[str, Any], region: str,
                       account: str) -> list[Request]:
    if operation in ("BatchGetItem", "BatchWriteItem"):
        return [Request(action, _table_arn(t, region, account)) for t in params.get("RequestItems", {})]
    if operation in ("TransactWriteItems", "TransactGetItems"):
        requests = []
        for item in params.get("TransactItems", []):
            ((kind, body),) = item.items()
            verb = "GetItem" if kind == "Get" else TRANSACT_ACTIONS[kind]
            requests.append(Request(f"dynamodb:{verb}", _table_arn(body["TableName"], region, account)))
        return requests
    if "StreamArn" in params:
        return [Request(action, params["StreamArn"])]
    if "TableName" in params:
        table = _table_arn(params["TableName"], region, account)
        return [Request(action, f"{table}/index/{params['IndexName']}" if params.get("IndexName") else table)]
    if operation == "GetRecords":
        # A shard iterator is opaque; AWS authorises it against the stream it came from.
        return [Request(action, _arn("dynamodb", region, account, "table/*/stream/*"))]
    return [Request(action, "*")]


# ---------------------------------------------------------------- policies


@cache
def _pattern(text: str, case_sensitive: bool) -> re.Pattern[str]:
    """IAM's wildcards: `*` any run of characters, `?` any one; nothing else is special."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in text)
    return re.compile(f"^{regex}$", re.DOTALL | (0 if case_sensitive else re.IGNORECASE))


def _matches(patterns: Iterable[str], value: str, case_sensitive: bool) -> bool:
    return any(_pattern(p, case_sensitive).match(value) for p in patterns)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return [v for v in (value if isinstance(value, list) else [value]) if v is not None]


CONDITION_OPERATORS = {
    "StringEquals": lambda expected, actual: actual in expected,
    "StringLike": lambda expected, actual: _matches(expected, actual, case_sensitive=True),
    "StringNotEquals": lambda expected, actual: actual not in expected,
    "ArnEquals": lambda expected, actual: actual in expected,
    "ArnLike": lambda expected, actual: _matches(expected, actual, case_sensitive=True),
}


def _condition_holds(condition: Mapping[str, Any], context: Mapping[str, str]) -> tuple[bool, str]:
    for operator, tests in condition.items():
        check = CONDITION_OPERATORS.get(operator)
        for key, expected in tests.items():
            if check is None:
                return False, f"condition operator {operator} is not evaluated locally"
            if key not in context:
                return False, f"condition key {key} is not known for this call"
            if not check([str(e) for e in _as_list(expected)], context[key]):
                return False, f"condition {operator} {key} {expected!r} does not hold for {context[key]!r}"
    return True, ""


def _statement_applies(statement: Mapping[str, Any], request: Request) -> tuple[bool, str]:
    if "Action" in statement and not _matches(_as_list(statement["Action"]), request.action, case_sensitive=False):
        return False, "action"
    if "NotAction" in statement and _matches(_as_list(statement["NotAction"]), request.action, case_sensitive=False):
        return False, "action"
    if "Resource" in statement and not _matches(_as_list(statement["Resource"]), request.resource, case_sensitive=True):
        return False, "resource"
    if "NotResource" in statement and _matches(_as_list(statement["NotResource"]), request.resource, case_sensitive=True):
        return False, "resource"
    holds, why = _condition_holds(statement.get("Condition", {}), dict(request.context))
    return holds, why or "condition"


def evaluate(statements: list[Mapping[str, Any]], request: Request) -> Decision:
    """IAM's evaluation within one principal's identity policies: explicit Deny > Allow > implicit deny."""
    allowed_by, near_misses = None, []
    for statement in statements:
        applies, why = _statement_applies(statement, request)
        if statement.get("Effect") == "Deny" and applies:
            return Decision(request, False, f"explicitly denied by {statement}")
        if statement.get("Effect") == "Allow":
            if applies:
                allowed_by = statement
            elif why not in ("action", "resource"):
                near_misses.append(why)
            elif why == "resource":
                near_misses.append(f"the action is allowed only on {_as_list(statement['Resource'])}")
    if allowed_by is not None:
        return Decision(request, True, "allowed")
    return Decision(request, False, "; ".join(near_misses) or "no statement allows this action")


@cache
def translated_template(path: str = str(TEMPLATE_PATH)) -> dict[str, Any]:
    from infra.template_checks import translate

    return translate(Path(path))


@dataclass
class FunctionPolicy:
    """One function's identity policy statements, resolvable against the names its code was given."""

    function: str
    statements: list[Any]
    environment: dict[str, Any]
    managed_policy_arns: list[str] = field(default_factory=list)


def function_policies(template_path: str | Path = TEMPLATE_PATH) -> dict[str, FunctionPolicy]:
    """Every function's inline role statements in the translated template (as SAM would deploy them)."""
    translated = translated_template(str(template_path))
    resources = translated["Resources"]
    policies = {}
    for name, function in functions(load_template(template_path)).items():
        role = resources[name]["Properties"].get("Role", {})
        role_name = role.get("Fn::GetAtt", [None])[0] if isinstance(role, dict) else None
        role_props = resources.get(role_name, {}).get("Properties", {}) if role_name else {}
        statements = [
            statement
            for policy in role_props.get("Policies", [])
            for statement in _as_list(policy.get("PolicyDocument", {}).get("Statement"))
        ]
        policies[name] = FunctionPolicy(
            function=name,
            statements=statements,
            environment=function["Properties"].get("Environment", {}).get("Variables", {}),
            managed_policy_arns=list(role_props.get("ManagedPolicyArns", [])),
        )
    return policies


def local_resources(template: Mapping[str, Any], environment: Mapping[str, Any], values: Mapping[str, str],
                    region: str, account: str = LOCAL_ACCOUNT_ID) -> LocalResources:
    """Physical names of the template's resources as the running code knows them.

    A resource the function's environment names (``TRACKS_TABLE: !Ref TracksTable``)
    takes the value the code was given; every other resource gets a name no real
    call can match, so a policy on it allows nothing the code did.
    """
    resources = LocalResources()
    given: dict[str, str] = {}
    for variable, value in environment.items():
        if variable in values and isinstance(value, dict) and set(value) == {"Ref"}:
            given[value["Ref"]] = values[variable]
    for logical_id, resource in template.get("Resources", {}).items():
        kind = resource.get("Type", "")
        name = given.get(logical_id, f"{logical_id}-not-named-in-the-environment")
        attributes: dict[str, str] = {}
        ref = name
        if kind == "AWS::DynamoDB::Table":
            attributes = {"Arn": _table_arn(name, region, account), "StreamArn": _table_arn(name, region, account) + "/stream/*"}
        elif kind == "AWS::S3::Bucket":
            attributes = {"Arn": f"arn:aws:s3:::{name}"}
        elif kind == "AWS::SQS::Queue":
            if not name.startswith("http"):
                name = f"https://sqs.{region}.amazonaws.com/{account}/{name}"
            ref = name
            arn = _queue_arn(name, region)
            attributes = {"Arn": arn, "QueueUrl": name, "QueueName": arn.rsplit(":", 1)[1]}
        elif kind == "AWS::SNS::Topic":
            ref = name if name.startswith("arn:") else _arn("sns", region, account, name)
            attributes = {"TopicArn": ref, "TopicName": ref.rsplit(":", 1)[1]}
        elif kind == "AWS::SecretsManager::Secret":
            ref = secret_arn(name, region, account)
            attributes = {"Id": ref}
        resources.refs[logical_id] = ref
        resources.attributes[logical_id] = attributes
    return resources


@dataclass
class PolicyChecker:
    """Decides calls of every function of a template; resolved statements are cached per set of names."""

    template_path: str | Path = TEMPLATE_PATH
    _resolved: dict[tuple[str, str, tuple[tuple[str, str], ...]], list[dict[str, Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.policies = function_policies(self.template_path)
        self.translated = translated_template(str(self.template_path))

    def statements(self, function: str, env: Mapping[str, str], region: str) -> list[dict[str, Any]]:
        policy = self.policies[function]
        values = tuple(sorted((k, env[k]) for k in policy.environment if k in env))
        key = (function, region, values)
        if key not in self._resolved:
            names = local_resources(self.translated, policy.environment, dict(values), region)
            resolver = Resolver(self.translated, names, "soundslike-local", region)
            self._resolved[key] = [s for s in (resolver.resolve(s) for s in policy.statements) if s]
        return self._resolved[key]

    def check(self, function: str, service: str, operation: str, params: Mapping[str, Any], region: str,
              env: Mapping[str, str]) -> list[Decision]:
        statements = self.statements(function, env, region)
        return [evaluate(statements, r) for r in requests_for_call(service, operation, params, region)]

    def logical_id_of(self, function: str, arn: str, env: Mapping[str, str], region: str) -> str | None:
        """The template resource an ARN belongs to, for messages that say what to add."""
        policy = self.policies[function]
        values = {k: env[k] for k in policy.environment if k in env}
        names = local_resources(self.translated, policy.environment, values, region)
        for logical_id, attributes in names.attributes.items():
            base = attributes.get("Arn") or attributes.get("TopicArn") or attributes.get("Id")
            if base and (arn == base or arn.startswith(base + "/")):
                return logical_id
        for logical_id, ref in names.refs.items():
            if self.translated["Resources"][logical_id]["Type"] == "AWS::SSM::Parameter" and arn == parameter_arn(ref, region):
                return logical_id
        return None
