"""Checks of template.yaml that go beyond "it parses": run by `make lint` and the tests.

    python -m infra.template_checks [template.yaml]

1. cfn-lint on the SAM template;
2. samtranslator translation, offline (local code and images are replaced by
   placeholder S3 / ECR locations, the region is fixed, no IAM calls);
3. cfn-lint on the translated CloudFormation, which sees what only exists after
   the transform (circular dependencies through generated roles and
   permissions, for one);
4. rules of our own: SQS visibility timeout >= 6 x the consuming function's
   timeout; no IAM Allow on Resource "*" unless AWS offers nothing narrower;
   every Handler resolves to a callable; every `require_env("NAME")` a handler
   can reach is set in that function's environment; MODEL_ID is set for every
   function that reads the model id or for none; a function serving a GET route
   has no write or secret permission; every non-read route is protected by the
   WriteAuth choice or listed as open.

Each check takes the template path and the repository root (where CodeUri and
DockerContext are resolved) and returns human-readable problems; empty means OK.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from cfnlint.api import ManualArgs, lint, lint_file
from samtranslator.metrics.metrics import DummyMetricsPublisher, Metrics
from samtranslator.model.exceptions import ExceptionWithMessage, InvalidDocumentException
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator

from catalog.model import MODEL_ID_VARIABLE, configured_model_id
from infra.authorizers import (
    ANY_METHOD_KEY,
    IAM,
    JWT,
    JWT_AUDIENCE_PARAMETER,
    JWT_ISSUER_PARAMETER,
    WRITE_AUTH_PARAMETER,
    Authorizer,
    body_security,
    route_authorizer,
)
from infra.template import TEMPLATE_PATH, TemplateError, code_root, functions, load_template, resources_of_type

REGION = "us-east-1"
PLACEHOLDER_CODE_URI = "s3://soundslike-template-checks/code.zip"
PLACEHOLDER_IMAGE_URI = f"123456789012.dkr.ecr.{REGION}.amazonaws.com/soundslike:template-checks"

# AWS's advice for SQS event sources: a message stays invisible through a few
# retries of the function before it can be received again.
VISIBILITY_TIMEOUT_PER_FUNCTION_TIMEOUT = 6
SQS_DEFAULT_VISIBILITY_TIMEOUT_S = 30
LAMBDA_DEFAULT_TIMEOUT_S = 3

# Actions that have no resource-level permissions, so AWS only accepts them on
# Resource "*" (Service Authorization Reference: no resource types listed).
# Keep this to what the stack can need; everything else must name its resources.
ACTIONS_ONLY_ON_ANY_RESOURCE = (
    "xray:PutTraceSegments",  # Powertools Tracer, if tracing is switched on
    "xray:PutTelemetryRecords",
    "cloudwatch:PutMetricData",  # metrics sent through the API rather than as EMF log lines
)

# Importing a handler module is what Lambda does at cold start; TensorFlow alone
# takes several seconds, so allow generously.
HANDLER_IMPORT_TIMEOUT_S = 300

_IMPORT_PROBE = """
import importlib, json, sys
root, module_name, attr = sys.argv[1:4]
sys.path.insert(0, root)
try:
    module = importlib.import_module(module_name)
    problem = None if callable(getattr(module, attr, None)) else f"{module_name} has no callable {attr!r}"
except BaseException as exc:
    problem = f"importing {module_name} failed: {type(exc).__name__}: {exc}"
print()
print(json.dumps({"problem": problem}))
"""

# Code that calls this reads the model id from MODEL_ID_VARIABLE.
MODEL_ID_READER = configured_model_id.__name__

Check = Callable[[Path, Path], list[str]]


class TranslationError(Exception):
    """samtranslator rejected the template."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


# ---------------------------------------------------------------- 1-3: cfn-lint and samtranslator


def check_cfn_lint(template_path: Path, repo_root: Path) -> list[str]:
    """cfn-lint errors and warnings on the SAM template as written."""
    matches = lint_file(Path(template_path), config=ManualArgs(regions=[REGION]))
    return [f"{Path(template_path).name}:{m.linenumber}: {m.rule.id} {m.message}" for m in matches]


def translate(template_path: Path, parameter_values: dict[str, str] | None = None) -> dict[str, Any]:
    """The CloudFormation that the SAM transform makes of the template, computed offline."""
    template = load_template(template_path)
    for resource in resources_of_type(template, "AWS::Serverless::Function").values():
        props = resource.setdefault("Properties", {})
        if props.get("PackageType") == "Image":
            props["ImageUri"] = PLACEHOLDER_IMAGE_URI
        else:
            props["CodeUri"] = PLACEHOLDER_CODE_URI
    # The translator's timing metrics go nowhere; publishing them at the end keeps
    # it from warning about dropped metrics.
    metrics = Metrics("ServerlessTransform", DummyMetricsPublisher())
    # The boto session only tells the translator its region (for the partition in
    # ARNs) and makes no calls. AWS managed policies named in Policies resolve from
    # the map bundled with samtranslator: with no policy loader given, IAM is never asked.
    translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name=REGION), metrics=metrics)
    try:
        return translator.translate(template, parameter_values=dict(parameter_values or {}))
    except InvalidDocumentException as exc:
        raise TranslationError([cause.message for cause in exc.causes]) from None
    except ExceptionWithMessage as exc:
        raise TranslationError([exc.message]) from None
    finally:
        metrics.publish()


def check_translation(template_path: Path, repo_root: Path) -> list[str]:
    try:
        translate(template_path)
    except TranslationError as exc:
        return [f"SAM translation: {problem}" for problem in exc.problems]
    return []


def check_translated_cfn_lint(template_path: Path, repo_root: Path) -> list[str]:
    """cfn-lint on the translated template; problems name the resource they sit in."""
    try:
        translated = translate(template_path)
    except TranslationError as exc:
        return [f"translated template not linted: the template does not translate ({exc})"]
    text = json.dumps(translated, indent=2)
    owners = _resource_of_each_line(text)
    problems = []
    for m in lint(text, config=ManualArgs(regions=[REGION])):
        owner = owners[m.linenumber - 1] if 0 < m.linenumber <= len(owners) else None
        where = f"resource {owner}" if owner else f"line {m.linenumber}"
        problems.append(f"translated template, {where}: {m.rule.id} {m.message}")
    return problems


def _resource_of_each_line(indented_json: str) -> list[str | None]:
    """For json.dumps(indent=2) output: the logical id of the resource each line belongs to."""
    owners: list[str | None] = []
    section = resource = None
    for line in indented_json.splitlines():
        if top := re.match(r'^  "([^"]+)":', line):
            section, resource = top[1], None
        elif section == "Resources" and (inner := re.match(r'^    "([^"]+)":', line)):
            resource = inner[1]
        owners.append(resource)
    return owners


# ---------------------------------------------------------------- 4a: queue visibility


def check_queue_visibility(template_path: Path, repo_root: Path) -> list[str]:
    """Every SQS queue feeding a function stays invisible for >= 6 x that function's Timeout."""
    template = load_template(template_path)
    parameters = template.get("Parameters", {})
    queues = resources_of_type(template, "AWS::SQS::Queue")
    problems = []
    for name, function in functions(template).items():
        props = function["Properties"]
        timeout_s = _int_value(props.get("Timeout", LAMBDA_DEFAULT_TIMEOUT_S), parameters)
        for event_name, event in props.get("Events", {}).items():
            if event.get("Type") != "SQS":
                continue
            where = f"{name} event {event_name}"
            queue_ref = event.get("Properties", {}).get("Queue")
            queue_name = _getatt_arn_target(queue_ref)
            if queue_name not in queues:
                problems.append(
                    f"{where}: Queue {queue_ref!r} is not a queue of this template; cannot check its VisibilityTimeout"
                )
                continue
            visibility_s = _int_value(
                queues[queue_name].get("Properties", {}).get("VisibilityTimeout", SQS_DEFAULT_VISIBILITY_TIMEOUT_S),
                parameters,
            )
            if timeout_s is None or visibility_s is None:
                problems.append(
                    f"{where}: cannot resolve {queue_name}'s VisibilityTimeout or {name}'s Timeout to a number"
                )
                continue
            needed_s = VISIBILITY_TIMEOUT_PER_FUNCTION_TIMEOUT * timeout_s
            if visibility_s < needed_s:
                problems.append(
                    f"{queue_name}: VisibilityTimeout {visibility_s} s is below "
                    f"{VISIBILITY_TIMEOUT_PER_FUNCTION_TIMEOUT} x {name}'s Timeout of {timeout_s} s "
                    f"(needs >= {needed_s} s; it feeds {where})"
                )
    return problems


def _getatt_arn_target(value: Any) -> str | None:
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        target = value["Fn::GetAtt"]
        parts = target if isinstance(target, list) else str(target).split(".")
        if len(parts) == 2 and parts[1] == "Arn":
            return str(parts[0])
    return None


def _int_value(value: Any, parameters: dict[str, Any]) -> int | None:
    """A number written out, or a !Ref to a parameter with a default."""
    if isinstance(value, dict) and set(value) == {"Ref"}:
        value = parameters.get(value["Ref"], {}).get("Default")
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# ---------------------------------------------------------------- 4b: no IAM grants on "*"


def check_no_wildcard_resources(template_path: Path, repo_root: Path) -> list[str]:
    """No IAM Allow statement covers every resource unless each of its actions can only be granted so.

    Runs on the translated template, so it sees function Policies, policy templates
    and IAM resources alike, exactly as they would be deployed.
    """
    try:
        translated = translate(template_path)
    except TranslationError as exc:
        return [f"IAM statements not checked: the template does not translate ({exc})"]
    resources = translated.get("Resources", {})
    functions_of_role = {
        _getatt_arn_target(r.get("Properties", {}).get("Role")): name
        for name, r in resources.items()
        if r.get("Type") == "AWS::Lambda::Function"
    }
    problems = []
    for where, document in _policy_documents(resources, functions_of_role):
        for statement in _flatten_if(document.get("Statement", []) if isinstance(document, dict) else []):
            if not isinstance(statement, dict) or statement.get("Effect") != "Allow":
                continue
            problem = _wildcard_problem(statement)
            if problem:
                problems.append(f"{where}: {problem}")
    return problems


def _policy_documents(resources: dict[str, Any], functions_of_role: dict[str | None, str]) -> Iterator[tuple[str, Any]]:
    for name, resource in resources.items():
        props = resource.get("Properties", {})
        if resource.get("Type") in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::RolePolicy"):
            yield name, props.get("PolicyDocument")
        elif resource.get("Type") in ("AWS::IAM::Role", "AWS::IAM::User", "AWS::IAM::Group"):
            owner = f"{name} (role of {functions_of_role[name]})" if name in functions_of_role else name
            for policy in _flatten_if(props.get("Policies", [])):
                if isinstance(policy, dict):
                    yield f"{owner} policy {policy.get('PolicyName')}", policy.get("PolicyDocument")


def _wildcard_problem(statement: dict[str, Any]) -> str | None:
    actions = [str(a) for a in _flatten_if(statement.get("Action", []))]
    if "NotResource" in statement:
        return f"Allow of {actions or 'NotAction'} with NotResource covers almost every resource; name the resources"
    if "*" not in _flatten_if(statement.get("Resource", [])):
        return None
    if "NotAction" in statement:
        return 'NotAction on Resource "*" grants almost everything; name the actions and resources'
    # IAM action names are case-insensitive.
    allowed = {action.lower() for action in ACTIONS_ONLY_ON_ANY_RESOURCE}
    too_broad = [a for a in actions if a.lower() not in allowed]
    if not too_broad:
        return None
    return f'{", ".join(too_broad)} allowed on Resource "*"; name the resources (only {", ".join(ACTIONS_ONLY_ON_ANY_RESOURCE)} may use "*")'


def _flatten_if(value: Any) -> list[Any]:
    """A value or list of values, with both branches of any Fn::If taken."""
    items = value if isinstance(value, list) else [value]
    flat: list[Any] = []
    for item in items:
        if isinstance(item, dict) and "Fn::If" in item and len(item["Fn::If"]) == 3:
            flat.extend(_flatten_if(item["Fn::If"][1]) + _flatten_if(item["Fn::If"][2]))
        else:
            flat.append(item)
    return flat


# ---------------------------------------------------------------- 4c-d: handlers and their settings


@dataclass(frozen=True)
class Handler:
    """Where a function's handler lives in the repository."""

    function: str
    code_root: Path
    module: str
    attr: str
    environment: dict[str, Any]
    dockerfile: Path | None = None

    @property
    def module_file(self) -> Path | None:
        return _module_file(self.code_root, self.module)

    @property
    def description(self) -> str:
        return f"{self.function}: handler {self.module}.{self.attr}"


def locate_handlers(template_path: Path, repo_root: Path) -> tuple[list[Handler], list[str]]:
    """Each function's handler, and the problems that keep a handler from being located at all."""
    handlers, problems = [], []
    for name, function in functions(load_template(template_path)).items():
        props = function["Properties"]
        environment = props.get("Environment", {}).get("Variables", {})
        if props.get("PackageType") == "Image":
            metadata = function.get("Metadata", {})
            root = Path(repo_root) / str(metadata.get("DockerContext", "."))
            dockerfile = root / str(metadata.get("Dockerfile", "Dockerfile"))
            command = props.get("ImageConfig", {}).get("Command")
            if not (isinstance(command, list) and command and isinstance(command[0], str)):
                problems.append(f"{name}: ImageConfig.Command does not name the handler; cannot check it")
                continue
            handler_spec = command[0]
        else:
            handler_spec, root = props.get("Handler"), code_root(function, repo_root)
            if root is None or not root.is_dir():
                problems.append(
                    f"{name}: CodeUri {props.get('CodeUri')!r} is not a folder of {repo_root}; cannot check its handler"
                )
                continue
            if not isinstance(handler_spec, str):
                problems.append(f"{name}: Handler {handler_spec!r} is not a string")
                continue
            dockerfile = None
        # Lambda's Python runtime accepts "pkg/module.func" as well as dots.
        module, _, attr = handler_spec.replace("/", ".").rpartition(".")
        if not module:
            problems.append(f"{name}: handler {handler_spec!r} is not of the form module.function")
            continue
        handlers.append(Handler(name, root.resolve(), module, attr, environment, dockerfile))
    return handlers, problems


def check_handlers_resolve(template_path: Path, repo_root: Path) -> list[str]:
    """Every handler names a module that imports cleanly (as at a cold start) and a callable in it."""
    handlers, problems = locate_handlers(template_path, repo_root)
    for handler in handlers:
        if handler.dockerfile is not None and not handler.dockerfile.is_file():
            problems.append(f"{handler.function}: Dockerfile {handler.dockerfile} (Metadata Dockerfile) does not exist")
        if handler.module_file is None:
            problems.append(
                f"{handler.description}: module file {handler.module.replace('.', '/')}.py "
                f"not found under {handler.code_root}"
            )
            continue
        problem = _import_problem(handler)
        if problem:
            problems.append(f"{handler.description}: {problem}")
    return problems


def _import_problem(handler: Handler) -> str | None:
    """Imports the handler in a fresh interpreter, as Lambda would at a cold start.

    Lambda sets the function's variables before it imports the module, so every
    variable the template sets is present (a placeholder stands in for a value that
    comes from !Ref and is known only once deployed); nothing else is.
    """
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG", "TMPDIR") if key in os.environ}
    env.update({key: value if isinstance(value, str) else f"deploy-time-value-of-{key}"
                for key, value in handler.environment.items()})
    env.update({"AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION, "AWS_LAMBDA_FUNCTION_NAME": handler.function})
    try:
        result = subprocess.run(
            [sys.executable, "-c", _IMPORT_PROBE, str(handler.code_root), handler.module, handler.attr],
            cwd=handler.code_root,
            env=env,
            capture_output=True,
            text=True,
            timeout=HANDLER_IMPORT_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return f"importing {handler.module} took longer than {HANDLER_IMPORT_TIMEOUT_S} s"
    lines = result.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1])["problem"]
    except (IndexError, ValueError, KeyError):
        return f"importing {handler.module} crashed the interpreter (exit {result.returncode}): {result.stderr[-500:]}"


def check_required_env_set(template_path: Path, repo_root: Path) -> list[str]:
    """Every require_env("NAME") reachable from a handler's module is set in that function's Environment."""
    handlers, unlocated = locate_handlers(template_path, repo_root)
    problems = [f"settings not checked: {problem}" for problem in unlocated]
    for handler in handlers:
        if handler.module_file is None:
            problems.append(f"{handler.description}: settings not checked, the handler module does not exist")
            continue
        try:
            reads = [
                (path, line, name)
                for path in sorted(_reachable_module_files(handler.code_root, handler.module))
                for line, name in _required_env_names(path)
            ]
        except SyntaxError as exc:
            problems.append(f"{handler.description}: settings not checked, {exc.filename}:{exc.lineno} does not parse")
            continue
        for path, line, name in reads:
            where = f"{path.relative_to(handler.code_root)}:{line}"
            if name is None:
                problems.append(
                    f"{handler.function}: {where} calls require_env with a computed name; use a literal so it can be checked"
                )
            elif handler.environment.get(name) in (None, ""):
                problems.append(
                    f"{handler.function}: {where} reads require_env({name!r}) but {name} is not set "
                    f"in {handler.function}'s Environment Variables (Globals included)"
                )
    return problems


def _module_file(code_root: Path, module: str) -> Path | None:
    base = code_root.joinpath(*module.split("."))
    for candidate in (base.with_name(base.name + ".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _reachable_module_files(code_root: Path, module: str) -> set[Path]:
    """The repository's own modules that importing `module` can run: its packages and imports, transitively."""
    seen: set[Path] = set()
    pending = [module]
    while pending:
        name = pending.pop()
        parts = name.split(".")
        for depth in range(1, len(parts) + 1):
            path = _module_file(code_root, ".".join(parts[:depth]))
            if path is None or path in seen:
                continue
            seen.add(path)
            package = ".".join(parts[:depth]) if path.name == "__init__.py" else ".".join(parts[: depth - 1])
            pending.extend(_imported_names(ast.parse(path.read_text(encoding="utf-8"), str(path)), package))
    return seen


def _imported_names(tree: ast.AST, package: str) -> list[str]:
    """Module names an import statement anywhere in the file may load, relative imports made absolute."""
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)] if package else []
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base:
                names.append(base)
            # `from pkg import name` may import a submodule called name.
            names.extend(f"{base}.{alias.name}" if base else alias.name for alias in node.names)
    return names


def _required_env_names(path: Path) -> Iterator[tuple[int, str | None]]:
    """(line, NAME) for each require_env call in the file; NAME is None when it is not a literal."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    local_names = {"require_env"} | {
        alias.asname
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
        if alias.name == "require_env" and alias.asname
    }
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
        if called not in local_names:
            continue
        first = node.args[0] if node.args else None
        literal = isinstance(first, ast.Constant) and isinstance(first.value, str)
        yield node.lineno, first.value if literal else None


def check_model_id_consistent(template_path: Path, repo_root: Path) -> list[str]:
    """Every function whose code reads the model id sets MODEL_ID to the same value, or none of them sets it.

    The extractor labels embeddings with it and annoy_service indexes only that label:
    setting it on one side alone makes the builder skip every item.
    """
    handlers, unlocated = locate_handlers(template_path, repo_root)
    problems = [f"model id not checked: {problem}" for problem in unlocated]
    readers: dict[str, Any] = {}
    for handler in handlers:
        if handler.module_file is None:
            continue
        sources = (path.read_text(encoding="utf-8") for path in _reachable_module_files(handler.code_root, handler.module))
        if any(f"{MODEL_ID_READER}(" in source for source in sources):
            readers[handler.function] = handler.environment.get(MODEL_ID_VARIABLE)
    values = {json.dumps(value, sort_keys=True) for value in readers.values()}
    if len(values) > 1:
        settings = ", ".join(
            f"{name}: {'unset' if value is None else json.dumps(value)}" for name, value in sorted(readers.items())
        )
        problems.append(
            f"{MODEL_ID_VARIABLE} must be set to one value for every function that reads it, or for none ({settings})"
        )
    return problems


READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# IAM actions that change state, by the verb their name starts with (Service Authorization Reference).
WRITE_VERBS = ("Put", "Update", "Delete", "BatchWrite", "TransactWrite", "Send", "Publish", "Create", "Abort",
               "Restore", "Write", "Invoke", "Start", "Tag", "Untag", "Set", "Add", "Remove", "Change", "Purge")
# A secret may be read by a GET route (the audio route asks Spotify), never written.
SECRET_WRITES = ("secretsmanager:Put", "secretsmanager:Update", "secretsmanager:Create", "secretsmanager:Delete")
# A function's Metadata key listing its non-read routes that are open on purpose (listener routes).
OPEN_ROUTES = "OpenRoutes"


# An HttpApi event with neither Path nor Method is the API's $default route (every request no
# other route matches); its key, as API Gateway and OpenRoutes spell it, is "$default".
DEFAULT_ROUTE = "$default"


def _http_routes(function: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    routes = []
    for event in function["Properties"].get("Events", {}).values():
        if event.get("Type") != "HttpApi":
            continue
        props = event.get("Properties", {})
        if "Path" not in props and "Method" not in props:
            routes.append(("ANY", DEFAULT_ROUTE, props))
        else:
            routes.append((str(props.get("Method", "ANY")).upper(), str(props.get("Path", "/{proxy+}")), props))
    return routes


def _route_key(method: str, path: str) -> str:
    return DEFAULT_ROUTE if path == DEFAULT_ROUTE else f"{method} {path}"


def _is_write_or_secret(action: str) -> bool:
    _, _, name = action.partition(":")
    return action.startswith(SECRET_WRITES) or name == "*" or name.startswith(WRITE_VERBS)


def check_read_routes_read_only(template_path: Path, repo_root: Path) -> list[str]:
    """A function that serves any GET route has no write permission (a secret it may only read).

    A read route's role then cannot change anything, whatever its code does; write
    routes go to a function of their own (ApiWriteFunction) with the same code.
    """
    template = load_template(template_path)
    problems = []
    for name, function in functions(template).items():
        reads = [f"{method} {path}" for method, path, _ in _http_routes(function) if method in READ_METHODS]
        if not reads:
            continue
        granted = [
            str(action)
            for policy in _flatten_if(function["Properties"].get("Policies", []))
            if isinstance(policy, dict)
            for statement in _flatten_if(policy.get("Statement", []))
            if isinstance(statement, dict) and statement.get("Effect") == "Allow"
            for action in _flatten_if(statement.get("Action", []))
            if _is_write_or_secret(str(action))
        ]
        if granted:
            problems.append(
                f"{name} serves read routes ({', '.join(reads)}) but may {', '.join(granted)}: move the write "
                f"routes and these permissions to a function of their own (as ApiWriteFunction)"
            )
    return problems


def check_write_routes_declare_auth(template_path: Path, repo_root: Path) -> list[str]:
    """Every route that is not a read says who may call it: either it is protected, taking the
    authorizer the WriteAuth parameter chooses (the `security` of its operation in the HttpApi's
    DefinitionBody: AWS_IAM with WriteAuth=iam, the JwtIssuer/JwtAudience JWT authorizer with
    WriteAuth=jwt), or it is a listener route listed in its function's `Metadata: OpenRoutes`.
    An event's own `Auth: Authorizer` cannot follow WriteAuth (SAM takes only a literal name
    there), so a non-read route that sets one is refused too; so is an operation in the
    DefinitionBody that no event routes to a function."""
    template = load_template(template_path)
    probe = {JWT_ISSUER_PARAMETER: "https://issuer.template-checks.example/", JWT_AUDIENCE_PARAMETER: "template-checks"}
    expected = {
        "iam": Authorizer(IAM),
        "jwt": Authorizer(JWT, probe[JWT_ISSUER_PARAMETER], (probe[JWT_AUDIENCE_PARAMETER],)),
    }
    problems = []
    allowed = template.get("Parameters", {}).get(WRITE_AUTH_PARAMETER, {}).get("AllowedValues")
    if resources_of_type(template, "AWS::Serverless::HttpApi") and sorted(allowed or []) != sorted(expected):
        problems.append(f"parameter {WRITE_AUTH_PARAMETER} must exist with AllowedValues {sorted(expected)}")
    routed: set[tuple[str, str]] = set()
    for name, function in functions(template).items():
        declared_open = {str(route) for route in function.get("Metadata", {}).get(OPEN_ROUTES, [])}
        routes = _http_routes(function)
        for method, path, props in routes:
            key = _route_key(method, path)
            routed.add((path, method))
            if method in READ_METHODS:
                continue
            secured = body_security(template, props) is not None
            if key in declared_open:
                if "Auth" in props or secured:
                    problems.append(f"{name}: route {key} is protected and listed in {OPEN_ROUTES}")
                continue
            if "Auth" in props:
                problems.append(
                    f"{name}: route {key} sets Auth: Authorizer {props['Auth'].get('Authorizer')} on its event, which "
                    f"cannot follow {WRITE_AUTH_PARAMETER}; give it the protected routes' security in the HttpApi's "
                    f"DefinitionBody instead (README, Protected writes)"
                )
            elif not secured:
                problems.append(
                    f"{name}: route {key} does not say who may call it; give it the protected routes' security in the "
                    f"HttpApi's DefinitionBody (as PUT /tracks/{{trackId}} has) for a write to the catalogue or a "
                    f"person's history, or list it in the function's Metadata {OPEN_ROUTES} for a listener route "
                    f"(README, Protected writes)"
                )
            else:
                got = {
                    choice: route_authorizer(template, props, {**probe, WRITE_AUTH_PARAMETER: choice})
                    for choice in expected
                }
                if got != expected:
                    problems.append(
                        f"{name}: route {key} is not guarded by the {WRITE_AUTH_PARAMETER} choice: "
                        + ", ".join(f"{WRITE_AUTH_PARAMETER}={choice} gives {got[choice]}" for choice in expected)
                    )
        for stale in sorted(declared_open - {_route_key(method, path) for method, path, _ in routes}):
            problems.append(f"{name}: Metadata {OPEN_ROUTES} lists {stale}, which is not one of its HttpApi routes")
    for api_name, api in resources_of_type(template, "AWS::Serverless::HttpApi").items():
        for path, operations in api.get("Properties", {}).get("DefinitionBody", {}).get("paths", {}).items():
            for operation in operations:
                method = "ANY" if operation == ANY_METHOD_KEY else operation.upper()
                if (path, method) not in routed:
                    problems.append(f"{api_name}: DefinitionBody has {method} {path}, which no function's event routes")
    return problems


# ---------------------------------------------------------------- running them all

CHECKS: dict[str, Check] = {
    "cfn-lint (SAM template)": check_cfn_lint,
    "SAM translation": check_translation,
    "cfn-lint (translated template)": check_translated_cfn_lint,
    "SQS visibility timeout >= 6 x function timeout": check_queue_visibility,
    'no IAM Allow on Resource "*"': check_no_wildcard_resources,
    "handlers resolve to callables": check_handlers_resolve,
    "require_env names set in the template": check_required_env_set,
    "MODEL_ID set for every reader or none": check_model_id_consistent,
    "read routes' functions cannot write": check_read_routes_read_only,
    "write routes say who may call them": check_write_routes_declare_auth,
}


def run_all(template_path: Path, repo_root: Path) -> dict[str, list[str]]:
    """Problems per check; a template that does not parse is a problem of every check but cfn-lint's."""
    results = {}
    for title, check in CHECKS.items():
        try:
            results[title] = check(template_path, repo_root)
        except TemplateError as exc:
            results[title] = [str(exc)]
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("template", nargs="?", type=Path, default=TEMPLATE_PATH, help="default: %(default)s")
    args = parser.parse_args(argv)
    template_path = args.template.resolve()
    failed = 0
    for title, problems in run_all(template_path, template_path.parent).items():
        print(f"{'FAIL' if problems else 'ok  '} {title}", flush=True)
        for problem in problems:
            print(f"     - {problem}")
        failed += bool(problems)
    print(
        f"{template_path.name}: {failed} of {len(CHECKS)} checks failed"
        if failed
        else f"{template_path.name}: all {len(CHECKS)} checks passed"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
