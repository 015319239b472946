"""The template checks pass on template.yaml and each one catches a deliberately broken copy.

Broken copies of the real template are made by editing the loaded template and
writing it as JSON to tmp_path; the handler and settings rules run on a tiny
repository built in tmp_path so they do not depend on the real handlers.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from infra.template import functions, load_template
from infra.template_checks import (
    CHECKS,
    VISIBILITY_TIMEOUT_PER_FUNCTION_TIMEOUT,
    _reachable_module_files,
    check_cfn_lint,
    check_handlers_resolve,
    check_model_id_consistent,
    check_no_wildcard_resources,
    check_queue_visibility,
    check_read_routes_read_only,
    check_required_env_set,
    check_translated_cfn_lint,
    check_translation,
    check_write_routes_declare_auth,
    locate_handlers,
    main,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = REPO_ROOT / "template.yaml"


def write_template(directory: Path, template: dict[str, Any]) -> Path:
    path = directory / "template.json"
    path.write_text(json.dumps(template, indent=2))
    return path


def sqs_consumer(template: dict[str, Any]) -> tuple[str, str, str]:
    """(function, event, queue) of the first SQS event source in the template."""
    for name, function in functions(template).items():
        for event_name, event in function["Properties"].get("Events", {}).items():
            if event["Type"] == "SQS":
                return name, event_name, event["Properties"]["Queue"]["Fn::GetAtt"][0]
    raise AssertionError("template.yaml has no SQS event source")


def zip_function(template: dict[str, Any]) -> str:
    return next(name for name, fn in functions(template).items() if fn["Properties"].get("PackageType", "Zip") == "Zip")


def add_statement(template: dict[str, Any], function: str, statement: dict[str, Any]) -> None:
    template["Resources"][function]["Properties"].setdefault("Policies", []).append({"Statement": [statement]})


@pytest.fixture
def real_template() -> dict[str, Any]:
    return load_template(TEMPLATE)


# ---------------------------------------------------------------- the real template


@pytest.mark.parametrize(
    "check",
    [check_cfn_lint, check_translation, check_translated_cfn_lint, check_queue_visibility, check_no_wildcard_resources],
    ids=lambda check: check.__name__,
)
def test_real_template_passes(check) -> None:
    assert check(TEMPLATE, REPO_ROOT) == []


def test_real_template_handlers_resolve_to_callables() -> None:
    assert check_handlers_resolve(TEMPLATE, REPO_ROOT) == []


def test_real_template_sets_every_required_env() -> None:
    assert check_required_env_set(TEMPLATE, REPO_ROOT) == []


# ---------------------------------------------------------------- cfn-lint and translation


def test_cfn_lint_reports_unknown_queue_property(tmp_path: Path, real_template: dict[str, Any]) -> None:
    _, _, queue = sqs_consumer(real_template)
    real_template["Resources"][queue]["Properties"]["VisibilityTimout"] = 720

    problems = check_cfn_lint(write_template(tmp_path, real_template), tmp_path)

    assert any("VisibilityTimout" in problem for problem in problems), problems


def test_translation_reports_misspelled_sqs_event_property(tmp_path: Path, real_template: dict[str, Any]) -> None:
    function, event, _ = sqs_consumer(real_template)
    event_props = real_template["Resources"][function]["Properties"]["Events"][event]["Properties"]
    event_props["BatchSze"] = event_props.pop("BatchSize", 4)

    problems = check_translation(write_template(tmp_path, real_template), tmp_path)

    assert any("BatchSze" in problem and f"{function}{event}" in problem for problem in problems), problems


def test_translated_lint_reports_circular_dependency_through_generated_permission(
    tmp_path: Path, real_template: dict[str, Any]
) -> None:
    # The bucket's notification needs the function's invoke permission, the
    # function needs its role, and the role's policy names the bucket: a cycle
    # that only exists once SAM has generated the permission and the role.
    function = zip_function(real_template)
    real_template["Resources"]["CycleBucket"] = {"Type": "AWS::S3::Bucket"}
    real_template["Resources"][function]["Properties"]["Events"]["CycleUpload"] = {
        "Type": "S3",
        "Properties": {"Bucket": {"Ref": "CycleBucket"}, "Events": "s3:ObjectCreated:*"},
    }
    add_statement(
        real_template,
        function,
        {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": {"Fn::Sub": "${CycleBucket.Arn}/*"}},
    )

    problems = check_translated_cfn_lint(write_template(tmp_path, real_template), tmp_path)

    assert any("Circular" in problem and "CycleBucket" in problem for problem in problems), problems


# ---------------------------------------------------------------- queue visibility


def test_visibility_rule_reports_queue_below_six_function_timeouts(
    tmp_path: Path, real_template: dict[str, Any]
) -> None:
    function, _, queue = sqs_consumer(real_template)
    timeout_s = functions(real_template)[function]["Properties"]["Timeout"]
    real_template["Resources"][queue]["Properties"]["VisibilityTimeout"] = (
        VISIBILITY_TIMEOUT_PER_FUNCTION_TIMEOUT * timeout_s - 1
    )

    problems = check_queue_visibility(write_template(tmp_path, real_template), tmp_path)

    assert len(problems) == 1
    assert queue in problems[0] and function in problems[0], problems


def test_visibility_rule_takes_timeout_from_globals(tmp_path: Path, real_template: dict[str, Any]) -> None:
    function, _, queue = sqs_consumer(real_template)
    visibility_s = real_template["Resources"][queue]["Properties"]["VisibilityTimeout"]
    real_template["Resources"][function]["Properties"].pop("Timeout", None)
    real_template["Globals"]["Function"]["Timeout"] = visibility_s // VISIBILITY_TIMEOUT_PER_FUNCTION_TIMEOUT + 1

    problems = check_queue_visibility(write_template(tmp_path, real_template), tmp_path)

    assert any(queue in problem and function in problem for problem in problems), problems


# ---------------------------------------------------------------- IAM statements on "*"


def test_wildcard_rule_reports_function_statement_on_any_resource(
    tmp_path: Path, real_template: dict[str, Any]
) -> None:
    function = zip_function(real_template)
    add_statement(real_template, function, {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"})

    problems = check_no_wildcard_resources(write_template(tmp_path, real_template), tmp_path)

    assert len(problems) == 1
    assert function in problems[0] and "s3:GetObject" in problems[0], problems


def test_wildcard_rule_reports_iam_policy_resource_on_any_resource(
    tmp_path: Path, real_template: dict[str, Any]
) -> None:
    function = zip_function(real_template)
    real_template["Resources"]["BroadPolicy"] = {
        "Type": "AWS::IAM::Policy",
        "Properties": {
            "PolicyName": "broad",
            "Roles": [{"Ref": f"{function}Role"}],
            "PolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": ["dynamodb:*"], "Resource": ["*"]}],
            },
        },
    }

    problems = check_no_wildcard_resources(write_template(tmp_path, real_template), tmp_path)

    assert len(problems) == 1
    assert "BroadPolicy" in problems[0] and "dynamodb:*" in problems[0], problems


def test_wildcard_rule_allows_only_actions_aws_grants_on_any_resource(
    tmp_path: Path, real_template: dict[str, Any]
) -> None:
    function = zip_function(real_template)
    add_statement(real_template, function, {"Effect": "Allow", "Action": "xray:PutTraceSegments", "Resource": "*"})
    add_statement(
        real_template,
        function,
        {"Effect": "Allow", "Action": ["xray:PutTelemetryRecords", "sqs:SendMessage"], "Resource": "*"},
    )

    problems = check_no_wildcard_resources(write_template(tmp_path, real_template), tmp_path)

    assert len(problems) == 1
    assert problems[0].split(": ", 1)[1].startswith("sqs:SendMessage allowed on"), problems


# ---------------------------------------------------------------- handlers and their settings, on a tiny repo


def tiny_repo(root: Path, files: dict[str, str], function: dict[str, Any] | None = None) -> Path:
    """A repository with the real catalog package, the given files and a template with one function."""
    shutil.copytree(REPO_ROOT / "catalog", root / "catalog", ignore=shutil.ignore_patterns("__pycache__"))
    files = {"worker/__init__.py": "", **files}
    for relative, text in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    properties = function or {"CodeUri": ".", "Handler": "worker.handler.lambda_handler", "Runtime": "python3.12"}
    properties.setdefault("Environment", {"Variables": {"WORKER_BUCKET": {"Ref": "DataBucket"}}})
    template = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Transform": "AWS::Serverless-2016-10-31",
        "Globals": {"Function": {"Timeout": 10, "Environment": {"Variables": {"SHARED_TABLE": "tracks"}}}},
        "Resources": {
            "DataBucket": {"Type": "AWS::S3::Bucket"},
            "WorkerFunction": {"Type": "AWS::Serverless::Function", "Properties": properties},
        },
    }
    return write_template(root, template)


SOUND_HANDLER = """
from catalog.settings import require_env
from shared.config import table_name


def lambda_handler(event, context):
    return {"bucket": require_env("WORKER_BUCKET"), "table": table_name()}
"""
SHARED_CONFIG = """
from catalog.settings import require_env


def table_name():
    return require_env("SHARED_TABLE")
"""
SOUND_FILES = {"worker/handler.py": SOUND_HANDLER, "shared/__init__.py": "", "shared/config.py": SHARED_CONFIG}


def test_handler_rule_passes_when_the_module_defines_the_handler(tmp_path: Path) -> None:
    template = tiny_repo(tmp_path, SOUND_FILES)

    assert check_handlers_resolve(template, tmp_path) == []


def test_handler_rule_reports_missing_module(tmp_path: Path) -> None:
    template = tiny_repo(tmp_path, {"worker/other.py": "def lambda_handler(event, context): ...\n"})

    problems = check_handlers_resolve(template, tmp_path)

    assert len(problems) == 1
    assert "WorkerFunction" in problems[0] and "worker/handler.py" in problems[0], problems


def test_handler_rule_reports_missing_function(tmp_path: Path) -> None:
    template = tiny_repo(tmp_path, {"worker/handler.py": "def handle(event, context): ...\n"})

    problems = check_handlers_resolve(template, tmp_path)

    assert len(problems) == 1
    assert "WorkerFunction" in problems[0] and "'lambda_handler'" in problems[0], problems


def test_handler_rule_accepts_import_time_read_of_a_setting_the_template_sets(tmp_path: Path) -> None:
    handler = 'from catalog.settings import require_env\nBUCKET = require_env("WORKER_BUCKET")\n\n\ndef lambda_handler(event, context): ...\n'
    template = tiny_repo(tmp_path, {"worker/handler.py": handler})

    assert check_handlers_resolve(template, tmp_path) == []


def test_handler_rule_reports_import_that_needs_a_setting_the_template_lacks(tmp_path: Path) -> None:
    handler = 'from catalog.settings import require_env\nQUEUE = require_env("WORKER_QUEUE")\n\n\ndef lambda_handler(event, context): ...\n'
    template = tiny_repo(tmp_path, {"worker/handler.py": handler})

    problems = check_handlers_resolve(template, tmp_path)

    assert len(problems) == 1
    assert "MissingSettingError" in problems[0] and "WORKER_QUEUE" in problems[0], problems


@pytest.mark.parametrize("with_dockerfile", [True, False])
def test_handler_rule_checks_image_function_command_and_dockerfile(tmp_path: Path, with_dockerfile: bool) -> None:
    files = dict(SOUND_FILES)
    if with_dockerfile:
        files["worker/Dockerfile"] = 'FROM public.ecr.aws/lambda/python:3.12\nCMD ["worker.handler.lambda_handler"]\n'
    image_function = {
        "PackageType": "Image",
        "ImageConfig": {"Command": ["worker.handler.lambda_handler"]},
    }
    template_path = tiny_repo(tmp_path, files, image_function)
    template = json.loads(template_path.read_text())
    template["Resources"]["WorkerFunction"]["Metadata"] = {"Dockerfile": "worker/Dockerfile", "DockerContext": "."}
    write_template(tmp_path, template)

    problems = check_handlers_resolve(template_path, tmp_path)

    if with_dockerfile:
        assert problems == []
    else:
        assert len(problems) == 1
        assert "WorkerFunction" in problems[0] and "worker/Dockerfile" in problems[0], problems


def test_env_rule_passes_when_every_required_name_is_set(tmp_path: Path) -> None:
    template = tiny_repo(tmp_path, SOUND_FILES)

    assert check_required_env_set(template, tmp_path) == []


def test_env_rule_reports_name_read_in_an_imported_package(tmp_path: Path) -> None:
    config = SHARED_CONFIG + '\n\ndef queue_url():\n    return require_env("RESULTS_QUEUE_URL")\n'
    template = tiny_repo(tmp_path, {**SOUND_FILES, "shared/config.py": config})

    problems = check_required_env_set(template, tmp_path)

    assert len(problems) == 1
    assert all(part in problems[0] for part in ("WorkerFunction", "shared/config.py", "RESULTS_QUEUE_URL")), problems


def test_env_rule_follows_relative_imports_and_aliases(tmp_path: Path) -> None:
    handler = "from .settings import bucket\n\n\ndef lambda_handler(event, context):\n    return bucket()\n"
    settings = (
        "from catalog.settings import require_env as env_required\n\n\n"
        'def bucket():\n    return env_required("ARCHIVE_BUCKET")\n'
    )
    template = tiny_repo(tmp_path, {"worker/handler.py": handler, "worker/settings.py": settings})

    problems = check_required_env_set(template, tmp_path)

    assert len(problems) == 1
    assert "worker/settings.py" in problems[0] and "ARCHIVE_BUCKET" in problems[0], problems


def test_env_rule_ignores_modules_the_handler_never_imports(tmp_path: Path) -> None:
    cli = 'from catalog.settings import require_env\n\nSOURCE = require_env("LOCAL_FOLDER")\n'
    template = tiny_repo(tmp_path, {**SOUND_FILES, "worker/cli.py": cli})

    assert check_required_env_set(template, tmp_path) == []


def test_env_rule_reports_computed_names(tmp_path: Path) -> None:
    handler = (
        "from catalog.settings import require_env\n\n\n"
        'def lambda_handler(event, context):\n    return require_env(event["setting"])\n'
    )
    template = tiny_repo(tmp_path, {"worker/handler.py": handler})

    problems = check_required_env_set(template, tmp_path)

    assert len(problems) == 1
    assert "worker/handler.py:5" in problems[0] and "computed name" in problems[0], problems


# ---------------------------------------------------------------- the command


def test_main_passes_a_sound_template(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    template = tiny_repo(tmp_path, SOUND_FILES)

    assert main([str(template)]) == 0
    assert f"all {len(CHECKS)} checks passed" in capsys.readouterr().out


def test_main_fails_naming_the_culprit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    handler = SOUND_HANDLER.replace('require_env("WORKER_BUCKET")', 'require_env("UNSET_BUCKET")')
    template = tiny_repo(tmp_path, {**SOUND_FILES, "worker/handler.py": handler})

    assert main([str(template)]) == 1
    out = capsys.readouterr().out
    assert "FAIL require_env names set in the template" in out and "UNSET_BUCKET" in out


# ---------------------------------------------------------------- one model id


def test_real_template_sets_model_id_for_every_reader_or_none() -> None:
    assert check_model_id_consistent(TEMPLATE, REPO_ROOT) == []


def model_id_readers(template: dict[str, Any]) -> list[str]:
    """The functions whose handler code reads the model id (the extractor and annoy_service today)."""
    handlers, _ = locate_handlers(TEMPLATE, REPO_ROOT)
    readers = [
        h.function
        for h in handlers
        if any("configured_model_id(" in p.read_text() for p in _reachable_module_files(h.code_root, h.module))
    ]
    assert len(readers) >= 2, readers
    return readers


def test_model_id_rule_reports_a_bump_on_one_side_only(tmp_path: Path, real_template: dict[str, Any]) -> None:
    first, second = model_id_readers(real_template)[:2]
    real_template["Resources"][first]["Properties"]["Environment"]["Variables"]["MODEL_ID"] = "musicnn-msd-v2"
    path = write_template(tmp_path, real_template)
    shutil.copytree(REPO_ROOT, tmp_path / "repo", ignore=shutil.ignore_patterns(".*", "tests", "bench", "demo", "docs"))

    problems = check_model_id_consistent(path, tmp_path / "repo")

    assert len(problems) == 1 and f'{first}: "musicnn-msd-v2"' in problems[0] and f"{second}: unset" in problems[0]


def test_model_id_rule_accepts_the_same_bump_on_both_sides(tmp_path: Path, real_template: dict[str, Any]) -> None:
    for name in model_id_readers(real_template):
        real_template["Resources"][name]["Properties"].setdefault("Environment", {}).setdefault("Variables", {})[
            "MODEL_ID"
        ] = "musicnn-msd-v2"
    path = write_template(tmp_path, real_template)
    shutil.copytree(REPO_ROOT, tmp_path / "repo", ignore=shutil.ignore_patterns(".*", "tests", "bench", "demo", "docs"))

    assert check_model_id_consistent(path, tmp_path / "repo") == []


# ---------------------------------------------------------------- read routes, write routes


def test_real_template_keeps_read_routes_read_only_and_write_routes_protected() -> None:
    assert check_read_routes_read_only(TEMPLATE, REPO_ROOT) == []
    assert check_write_routes_declare_auth(TEMPLATE, REPO_ROOT) == []


def _function_with_route(template: dict[str, Any], method: str) -> str:
    return next(
        name
        for name, fn in functions(template).items()
        if any(e["Type"] == "HttpApi" and e["Properties"].get("Method") == method for e in fn["Properties"]["Events"].values())
    )


def test_read_route_rule_reports_a_get_function_that_may_write(tmp_path: Path, real_template: dict[str, Any]) -> None:
    reader = _function_with_route(real_template, "GET")
    add_statement(real_template, reader, {"Effect": "Allow", "Action": ["dynamodb:PutItem", "secretsmanager:PutSecretValue"],
                                          "Resource": {"Fn::GetAtt": ["TracksTable", "Arn"]}})

    problems = check_read_routes_read_only(write_template(tmp_path, real_template), tmp_path)

    assert len(problems) == 1
    assert problems[0].startswith(reader) and "dynamodb:PutItem, secretsmanager:PutSecretValue" in problems[0]


HISTORY_ROUTE = {
    "Type": "HttpApi",
    "Properties": {"ApiId": {"Ref": "HttpApi"}, "Method": "POST", "Path": "/users/{userId}/import-test"},
}


def test_write_route_rule_reports_a_route_that_does_not_say_who_may_call_it(
    tmp_path: Path, real_template: dict[str, Any]
) -> None:
    writer = _function_with_route(real_template, "PUT")
    real_template["Resources"][writer]["Properties"]["Events"]["History"] = HISTORY_ROUTE

    problems = check_write_routes_declare_auth(write_template(tmp_path, real_template), tmp_path)

    assert problems == [
        f"{writer}: route POST /users/{{userId}}/import-test does not say who may call it; give it the protected "
        "routes' security in the HttpApi's DefinitionBody (as PUT /tracks/{trackId} has) for a write to the catalogue "
        "or a person's history, or list it in the function's Metadata OpenRoutes for a listener route (README, "
        "Protected writes)"
    ]


def test_write_route_rule_reads_an_event_without_path_and_method_as_the_default_route(
    tmp_path: Path, real_template: dict[str, Any]
) -> None:
    # $default takes every method: it must say who may call it, as "$default" in OpenRoutes.
    function = real_template["Resources"]["ApiFunction"]
    assert {"Type": "HttpApi", "Properties": {"ApiId": {"Ref": "HttpApi"}}} in function["Properties"]["Events"].values()
    function["Metadata"]["OpenRoutes"].remove("$default")

    problems = check_write_routes_declare_auth(write_template(tmp_path, real_template), tmp_path)

    assert problems == [
        "ApiFunction: route $default does not say who may call it; give it the protected routes' security in the "
        "HttpApi's DefinitionBody (as PUT /tracks/{trackId} has) for a write to the catalogue or a person's history, "
        "or list it in the function's Metadata OpenRoutes for a listener route (README, Protected writes)"
    ]


def test_write_route_rule_refuses_a_literal_authorizer_that_cannot_follow_write_auth(
    tmp_path: Path, real_template: dict[str, Any]
) -> None:
    writer = _function_with_route(real_template, "PUT")
    event = json.loads(json.dumps(HISTORY_ROUTE))
    event["Properties"]["Auth"] = {"Authorizer": "AWS_IAM"}
    real_template["Resources"][writer]["Properties"]["Events"]["History"] = event

    problems = check_write_routes_declare_auth(write_template(tmp_path, real_template), tmp_path)

    assert problems == [
        f"{writer}: route POST /users/{{userId}}/import-test sets Auth: Authorizer AWS_IAM on its event, which cannot "
        "follow WriteAuth; give it the protected routes' security in the HttpApi's DefinitionBody instead (README, "
        "Protected writes)"
    ]


def test_write_route_rule_accepts_a_route_under_the_write_auth_choice_and_reports_one_that_is_not(
    tmp_path: Path, real_template: dict[str, Any]
) -> None:
    writer = _function_with_route(real_template, "PUT")
    real_template["Resources"][writer]["Properties"]["Events"]["History"] = HISTORY_ROUTE
    paths = real_template["Resources"]["HttpApi"]["Properties"]["DefinitionBody"]["paths"]
    paths["/users/{userId}/import-test"] = {"post": json.loads(json.dumps(paths["/tracks/{trackId}"]["put"]))}
    assert check_write_routes_declare_auth(write_template(tmp_path, real_template), tmp_path) == []

    # IAM whatever WriteAuth says: the JWT choice would not reach this route.
    paths["/users/{userId}/import-test"]["post"]["security"] = [{"AWS_IAM": []}]
    problems = check_write_routes_declare_auth(write_template(tmp_path, real_template), tmp_path)
    assert len(problems) == 1
    assert problems[0].startswith(f"{writer}: route POST /users/{{userId}}/import-test is not guarded by the WriteAuth "
                                  "choice: WriteAuth=iam gives Authorizer(kind='AWS_IAM'")
    assert "WriteAuth=jwt gives Authorizer(kind='AWS_IAM'" in problems[0]


def test_write_route_rule_reports_a_definition_body_operation_no_event_routes(
    tmp_path: Path, real_template: dict[str, Any]
) -> None:
    paths = real_template["Resources"]["HttpApi"]["Properties"]["DefinitionBody"]["paths"]
    paths["/users/{userId}/gone"] = {"post": {"security": [{"AWS_IAM": []}]}}

    problems = check_write_routes_declare_auth(write_template(tmp_path, real_template), tmp_path)

    assert problems == ["HttpApi: DefinitionBody has POST /users/{userId}/gone, which no function's event routes"]


def test_write_route_rule_accepts_a_listener_route_listed_as_open_and_reports_a_stale_entry(
    tmp_path: Path, real_template: dict[str, Any]
) -> None:
    writer = _function_with_route(real_template, "PUT")
    function = real_template["Resources"][writer]
    function["Properties"]["Events"]["Skip"] = {
        "Type": "HttpApi",
        "Properties": {"ApiId": {"Ref": "HttpApi"}, "Method": "POST", "Path": "/stations/{stationId}/skip"},
    }
    declared = function.setdefault("Metadata", {}).setdefault("OpenRoutes", [])
    declared += ["POST /stations/{stationId}/skip", "POST /gone"]

    problems = check_write_routes_declare_auth(write_template(tmp_path, real_template), tmp_path)

    assert problems == [f"{writer}: Metadata OpenRoutes lists POST /gone, which is not one of its HttpApi routes"]
