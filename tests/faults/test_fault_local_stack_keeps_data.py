"""Row "`make down`, then `make up`": the local stack keeps every table, bucket and secret of
template.yaml across a clean restart and across a crash (the stack's process killed with
SIGKILL), losing at most the last snapshot interval; `make clean` (no data dir) starts over.

Runs `python -m infra up/down` as `make up/down` do, with a 0.5 s snapshot interval."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from infra.cli import pid_alive
from infra.template import REPO_ROOT, load_template, resources_of_type

SNAPSHOT_INTERVAL_S = 0.5
WAIT_S = 60.0


def poll(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


class Cli:
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.env = {**os.environ, "SOUNDSLIKE_STATE_DIR": str(state_dir), "PYTHONPATH": str(REPO_ROOT),
                    "SOUNDSLIKE_SNAPSHOT_INTERVAL_S": str(SNAPSHOT_INTERVAL_S)}

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        run = subprocess.run([sys.executable, "-m", "infra", *args], env=self.env, cwd=REPO_ROOT,
                             capture_output=True, text=True, timeout=180)
        assert run.returncode == 0, run.stdout + run.stderr
        return run

    @property
    def state(self) -> dict[str, Any]:
        return json.loads((self.state_dir / "stack.json").read_text())

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.state["endpoint"], region_name="us-east-1")

    def ref(self, logical_id: str) -> str:
        return self.state["resources"]["refs"][logical_id]


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    runner = Cli(tmp_path / "state")
    try:
        yield runner
    finally:
        subprocess.run([sys.executable, "-m", "infra", "down"], env=runner.env, cwd=REPO_ROOT,
                       capture_output=True, timeout=60)


def table_key(logical_id: str, value: str) -> dict[str, dict[str, str]]:
    """An item key of any table of the template, from its KeySchema and AttributeDefinitions."""
    props = load_template()["Resources"][logical_id]["Properties"]
    types = {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]}
    return {k["AttributeName"]: {types[k["AttributeName"]]: "7" if types[k["AttributeName"]] == "N" else value}
            for k in props["KeySchema"]}


def write_everything(cli: Cli, tag: str) -> None:
    template = load_template()
    ddb, s3 = cli.client("dynamodb"), cli.client("s3")
    for logical_id in resources_of_type(template, "AWS::DynamoDB::Table"):
        ddb.put_item(TableName=cli.ref(logical_id),
                     Item={**table_key(logical_id, tag), "blob": {"B": tag.encode() + b"\x00\xff"}, "tag": {"S": tag}})
    for logical_id in resources_of_type(template, "AWS::S3::Bucket"):
        s3.put_object(Bucket=cli.ref(logical_id), Key=f"kept/{tag}.bin", Body=tag.encode() * 1000,
                      Metadata={"tag": tag}, ContentType="application/x-test")
    for logical_id in resources_of_type(template, "AWS::SecretsManager::Secret"):
        cli.client("secretsmanager").put_secret_value(SecretId=cli.ref(logical_id), SecretString=json.dumps({"tag": tag}))


def assert_everything_kept(cli: Cli, tag: str) -> None:
    template = load_template()
    ddb, s3 = cli.client("dynamodb"), cli.client("s3")
    for logical_id in resources_of_type(template, "AWS::DynamoDB::Table"):
        item = ddb.get_item(TableName=cli.ref(logical_id), Key=table_key(logical_id, tag), ConsistentRead=True).get("Item")
        assert item is not None, f"{logical_id} lost {tag}"
        assert item["blob"]["B"] == tag.encode() + b"\x00\xff" and item["tag"]["S"] == tag
    for logical_id in resources_of_type(template, "AWS::S3::Bucket"):
        obj = s3.get_object(Bucket=cli.ref(logical_id), Key=f"kept/{tag}.bin")
        assert obj["Body"].read() == tag.encode() * 1000
        assert obj["Metadata"] == {"tag": tag} and obj["ContentType"] == "application/x-test"


def test_down_then_up_keeps_every_table_bucket_and_secret(cli: Cli) -> None:
    cli("up")
    # No data dir yet (a first start, or after `make clean`): the stack starts empty.
    assert cli.client("s3").list_objects_v2(Bucket=cli.ref("IndexBucket")).get("KeyCount", 0) == 0
    assert cli.client("dynamodb").scan(TableName=cli.ref("TracksTable"))["Count"] == 0
    write_everything(cli, "first")
    cli("down")
    assert not (cli.state_dir / "stack.json").exists()

    cli("up")
    assert_everything_kept(cli, "first")
    secret = cli.client("secretsmanager").get_secret_value(SecretId=cli.ref("SpotifySecret"))["SecretString"]
    assert json.loads(secret) == {"tag": "first"}
    assert "data snapshot :" in cli("status").stdout


def test_a_crash_loses_at_most_the_last_snapshot_interval(cli: Cli) -> None:
    cli("up")
    write_everything(cli, "before-crash")
    written_at = time.time()
    summary = cli.state_dir / "data" / "snapshot.json"

    def snapshot_after_the_write() -> bool:
        # saved_at has whole seconds: a snapshot started in a later second holds the write.
        if not summary.exists():
            return False
        saved = time.mktime(time.strptime(json.loads(summary.read_text())["saved_at"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
        return saved >= int(written_at) + 1

    poll(snapshot_after_the_write, "a periodic snapshot")
    state = cli.state
    os.kill(state["pid"], signal.SIGKILL)
    poll(lambda: not pid_alive(state["pid"]) and not pid_alive(state["moto_pid"]), "the killed stack and its moto")

    cli("up")
    assert cli.state["pid"] != state["pid"]
    assert_everything_kept(cli, "before-crash")
