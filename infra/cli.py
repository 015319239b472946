"""`python -m infra COMMAND`: run the local stack in the background and use it.

  up [--extract]       start moto + resources + event pump (+ API) in the background
  status               endpoints, pid, queue depths, tracks by status, published index
  down                 stop exactly what `up` started
  run                  the same stack in the foreground (what `up` runs)
  exec -- CMD...       run CMD with the stack's environment (starts the stack if needed)
  extract              drain ExtractQueue through the extractor handler, with progress
  schedule [PLAYLIST]  invoke the crawler with a Scheduled Event
  sign-request METHOD URL [--data BODY|@FILE] [--content-type TYPE]
                       send a SigV4-signed request (the local credentials, or AWS's) and print the reply,
                       e.g. sign-request PUT http://127.0.0.1:8080/tracks/4uLU6hMCjMI75M1A2tKUQC
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from catalog.settings import env_float
from infra.authorizers import WRITE_AUTH_PARAMETER
from infra.persist import SNAPSHOT_INTERVAL_S, PeriodicSnapshots, StackData
from infra.pump import SqsPoller
from infra.resources import LocalResources
from infra.stack import LocalStack, port_open
from infra.template import REPO_ROOT

UP_TIMEOUT_S = 90.0
DOWN_TIMEOUT_S = 15.0
# `status` exit codes besides 0: the stack's services do not answer / no stack is running.
STATUS_UNREADABLE = 1
STATUS_NOT_RUNNING = 3


def state_dir() -> Path:
    return Path(os.environ.get("SOUNDSLIKE_STATE_DIR", REPO_ROOT / ".local"))


def state_file() -> Path:
    return state_dir() / "stack.json"


def data_dir() -> Path:
    """Where the stack's data is kept between runs (`make clean` removes it with the state dir)."""
    return state_dir() / "data"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child (exited, not yet reaped) is not alive for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def read_state() -> dict[str, Any] | None:
    """The running stack's state, or None when no stack is running."""
    path = state_file()
    if not path.exists():
        return None
    try:
        state = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    if not state.get("ready") or not pid_alive(int(state["pid"])):
        return None
    return state


# -- run: the stack in the foreground -------------------------------------------------------

def write_auth_parameters(write_auth: str, issuer: str, audience: str) -> dict[str, str]:
    """The template parameters the loopback gateway guards the protected writes with (WriteAuth,
    JwtIssuer, JwtAudience), as `sam deploy --parameter-overrides` would set them; ValueError when
    jwt lacks its issuer or audience (the template's own rule)."""
    if write_auth == "iam":
        if issuer or audience:
            raise ValueError("--jwt-issuer and --jwt-audience apply only with --write-auth jwt")
        return {WRITE_AUTH_PARAMETER: "iam"}
    if not issuer or not audience:
        raise ValueError("--write-auth jwt needs --jwt-issuer (the issuer URL of the tokens to accept) and --jwt-audience")
    return {WRITE_AUTH_PARAMETER: "jwt", "JwtIssuer": issuer, "JwtAudience": audience}


def run(extract: bool, api_port: int | None, parameters: dict[str, str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    directory = state_dir()
    directory.mkdir(parents=True, exist_ok=True)
    stack = LocalStack(log_path=directory / "moto.log").start()
    stack.apply_env()
    data = StackData(stack.template, stack.resources, stack.client, data_dir())
    # Before the pump starts, so that the restored items reach the index as any other change.
    restored = data.restore()
    if restored is not None:
        print(f"restored the snapshot of {restored.saved_at}: {sum(restored.items.values())} items, "
              f"{sum(restored.objects.values())} objects", flush=True)
    snapshots = PeriodicSnapshots(data, env_float("SOUNDSLIKE_SNAPSHOT_INTERVAL_S", SNAPSHOT_INTERVAL_S))
    snapshots.start()
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    # The crawler consumes CrawlQueue (PUT /tracks/{trackId}); its schedule is `make`-driven locally.
    # HistoryTrainFunction consumes TrainQueue (make history, POST /users/{userId}/history).
    functions = {"AnnoyServiceFunction", "CrawlerFunction", "HistoryTrainFunction"} | (
        {"ExtractorFunction", "ExtractDeadLetterFunction"} if extract else set())
    pump = stack.pump(only=functions)
    pump.start()
    gateway = None
    api_url = None
    if api_port is not None:
        gateway = stack.serve_api(host="127.0.0.1", port=api_port, parameters=parameters)
        api_url = f"http://127.0.0.1:{gateway[0].server_address[1]}"
    state = {
        "ready": True,
        "pid": os.getpid(),
        "moto_pid": stack.moto.process.pid if stack.moto.process else None,
        "endpoint": stack.endpoint,
        "api_url": api_url,
        "write_auth": dict(parameters or {WRITE_AUTH_PARAMETER: "iam"}),
        "pumped_functions": sorted(functions),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "snapshot_interval_s": snapshots.interval_s,
        "env": stack.env(),
        "resources": stack.resources.to_json(),
    }
    state_file().write_text(json.dumps(state, indent=2))
    print(f"local stack ready: moto at {stack.endpoint}" + (f", API at {api_url}" if api_url else ""), flush=True)
    try:
        stopping.wait()
    finally:
        pump.stop()
        if gateway is not None:
            from infra.http_gateway import shutdown

            shutdown(*gateway)
        snapshots.stop()  # the last snapshot, with nothing running that could still write
        stack.stop()
        state_file().unlink(missing_ok=True)
    return 0


# -- up / down / status ------------------------------------------------------------------

def up(extract: bool, api_port: int | None, parameters: dict[str, str] | None = None) -> int:
    state = read_state()
    if state:
        print(f"local stack already running (pid {state['pid']})")
        return status()
    directory = state_dir()
    directory.mkdir(parents=True, exist_ok=True)
    state_file().unlink(missing_ok=True)
    command = [sys.executable, "-m", "infra", "run"]
    command += ["--no-api"] if api_port is None else ["--api-port", str(api_port)]
    command += ["--extract"] if extract else []
    if parameters and parameters.get(WRITE_AUTH_PARAMETER) == "jwt":
        command += ["--write-auth", "jwt", "--jwt-issuer", parameters["JwtIssuer"], "--jwt-audience", parameters["JwtAudience"]]
    with open(directory / "stack.log", "ab") as log_file:
        process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=log_file, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + UP_TIMEOUT_S
    while read_state() is None:
        if process.poll() is not None:
            print(f"local stack failed to start (exit {process.returncode}); see {directory / 'stack.log'}",
                  file=sys.stderr)
            return 1
        if time.monotonic() > deadline:
            process.terminate()
            print(f"local stack did not become ready in {UP_TIMEOUT_S:.0f} s; see {directory / 'stack.log'}",
                  file=sys.stderr)
            return 1
        time.sleep(0.2)
    return status()


def down() -> int:
    path = state_file()
    if not path.exists():
        print("local stack is not running")
        return 0
    state = json.loads(path.read_text())
    pids = [int(p) for p in (state.get("pid"), state.get("moto_pid")) if p]
    for pid in pids[:1]:
        if pid_alive(pid):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + DOWN_TIMEOUT_S
    while any(pid_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in pids:
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
    path.unlink(missing_ok=True)
    ports = [p for p in (_port(state.get("endpoint")), _port(state.get("api_url"))) if p]
    still_open = [p for p in ports if port_open("127.0.0.1", p)]
    if still_open:
        print(f"stopped pids {pids}, but ports {still_open} are still open", file=sys.stderr)
        return 1
    print(f"local stack stopped (pids {', '.join(map(str, pids))}; ports {', '.join(map(str, ports))} closed)")
    return 0


def _port(url: str | None) -> int | None:
    return int(url.rsplit(":", 1)[1].split("/")[0]) if url else None


def status() -> int:
    state = read_state()
    if state is None:
        print("local stack is not running (start it with `make up`)")
        return STATUS_NOT_RUNNING
    os.environ.update(state["env"])
    resources = LocalResources.from_json(state["resources"])
    print(f"local stack: pid {state['pid']} (moto pid {state['moto_pid']}), started {state['started_at']}")
    print(f"  moto endpoint : {state['endpoint']}")
    print(f"  HTTP API      : {state['api_url'] or '-'}")
    auth = state.get("write_auth") or {}
    if state["api_url"] and auth.get(WRITE_AUTH_PARAMETER) == "jwt":
        print(f"  writes        : bearer tokens of {auth['JwtIssuer']} for {auth['JwtAudience']} (WriteAuth=jwt)")
    elif state["api_url"]:
        print("  writes        : SigV4-signed (WriteAuth=iam; python -m infra sign-request)")
    print(f"  event pump    : {', '.join(state['pumped_functions'])}")
    summary = data_dir() / "snapshot.json"
    saved = json.loads(summary.read_text())["saved_at"] if summary.exists() else "none yet"
    print(f"  data snapshot : {saved} (every {state.get('snapshot_interval_s', SNAPSHOT_INTERVAL_S):g} s, in {data_dir()})")
    try:
        for line in _summary(resources):
            print("  " + line)
    except Exception as exc:  # status must still print what it knows, then fail
        print(f"  could not read resources: {exc}", file=sys.stderr)
        return STATUS_UNREADABLE
    return 0


def _summary(resources: LocalResources) -> list[str]:
    from collections import Counter

    import boto3

    from catalog.bundle_store import BundleStore
    from catalog.storage import TrackTable
    from infra.pump import queue_depths

    sqs = boto3.client("sqs")
    lines = []
    for name in ("ExtractQueue", "ExtractDLQ", "IndexFailureQueue"):
        url = resources.refs.get(name)
        if url:
            waiting, in_flight = queue_depths(sqs, url)
            lines.append(f"{name:<14}: {waiting} waiting, {in_flight} in flight")
    items = TrackTable(resources.refs["TracksTable"]).scan(
        ProjectionExpression="#s", ExpressionAttributeNames={"#s": "status"})
    counts = Counter(item.get("status", "?") for item in items)
    lines.append("tracks        : " + (", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "none"))
    read = BundleStore(resources.refs["IndexBucket"]).read_latest()
    latest = read.pointer
    if latest is not None:
        delta = f", delta of {latest.delta_size}" if latest.delta_sequence else ""
        lines.append(f"index         : version {latest.version}, {latest.count} tracks{delta}")
    elif read.exists:
        lines.append(f"index         : LATEST.json is unusable ({read.error}); make index repairs it")
    else:
        lines.append("index         : none published yet")
    return lines


def ensure_up() -> dict[str, Any]:
    state = read_state()
    if state is None:
        print("starting the local stack (make up) ...", file=sys.stderr)
        if up(extract=False, api_port=0) != 0:
            raise SystemExit(1)
        state = read_state()
        assert state is not None
    return state


def exec_command(command: list[str]) -> int:
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        print("usage: python -m infra exec -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    state = ensure_up()
    env = dict(os.environ)
    env.update(state["env"])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH", "")]))
    return subprocess.call(command, env=env)


# -- extract / schedule: the stack's functions, driven from the foreground -----------------

def _attached_stack(state: dict[str, Any]) -> LocalStack:
    """A LocalStack object for the running stack (no new server)."""
    stack = LocalStack()
    stack.moto.port = int(state["endpoint"].rsplit(":", 1)[1])
    stack.resources = LocalResources.from_json(state["resources"])
    stack.apply_env()
    return stack


@dataclass(frozen=True)
class FailedTrack:
    track_id: str
    title: str
    error: str


@dataclass
class ExtractReport:
    ok: int
    retried: int
    dead: int
    invocations: int
    failed: list[FailedTrack] = field(default_factory=list)

    def format(self) -> str:
        lines = [f"extract: {self.ok} ok, {self.retried} retried, {self.dead} failed into ExtractDLQ, "
                 f"{len(self.failed)} tracks failed ({self.invocations} invocations)"]
        lines += [f"  failed {t.track_id}{f' ({t.title})' if t.title else ''}: {t.error}" for t in self.failed]
        return "\n".join(lines)


def _drain(poller: SqsPoller, bar: Any | None = None) -> None:
    """Poll until the poller's queue has stayed empty for three polls."""
    idle = 0
    while idle < 3:
        batch = poller.poll_once(wait_s=1)
        if batch.invocations == 0:
            idle = idle + 1 if poller.depth() == 0 else 0
            continue
        idle = 0
        if bar is not None:
            bar.total = max(bar.total, bar.n + batch.succeeded + poller.depth())
            bar.update(batch.succeeded)
            bar.set_postfix(retried=poller.stats.failed)


def failed_since(table_name: str, since: str) -> list[FailedTrack]:
    """Tracks marked failed at or after ``since`` (ISO 8601 UTC, seconds), oldest first."""
    from boto3.dynamodb.conditions import Attr

    from catalog.storage import TrackTable

    items = TrackTable(table_name).scan(FilterExpression=Attr("status").eq("failed") & Attr("extracted_at").gte(since))
    found = sorted(items, key=lambda item: (item.get("extracted_at", ""), item["track_id"]))
    return [FailedTrack(item["track_id"], str(item.get("title", "")), str(item.get("error", ""))) for item in found]


def drain_extract_queue(stack: LocalStack) -> ExtractReport:
    """Run the extractor's event source mapping until ExtractQueue is empty, with a progress bar; then
    ExtractDLQ's, so that every message that used up its receives marks its track failed."""
    from tqdm import tqdm

    from catalog.records import utc_now_iso

    started = utc_now_iso()
    (poller,) = (p for p in stack.pollers(only={"ExtractorFunction"}) if isinstance(p, SqsPoller))
    (dead_letters,) = (p for p in stack.pollers(only={"ExtractDeadLetterFunction"}) if isinstance(p, SqsPoller))
    total = poller.depth()
    print(f"extracting: {total} messages in {stack.resources.attributes['ExtractQueue']['QueueName']}",
          file=sys.stderr)
    with tqdm(total=total, unit="msg", dynamic_ncols=True, file=sys.stderr) as bar:
        _drain(poller, bar)
    _drain(dead_letters)
    stats = poller.stats
    return ExtractReport(ok=stats.succeeded, retried=stats.failed, dead=dead_letters.stats.succeeded,
                         invocations=stats.invocations,
                         failed=failed_since(stack.resources.refs["TracksTable"], started))


def extract() -> int:
    state = ensure_up()
    if "ExtractorFunction" in state["pumped_functions"]:
        print("the background pump already runs the extractor (make up EXTRACT=1); nothing to drain here")
        return 0
    report = drain_extract_queue(_attached_stack(state))
    print(report.format())
    return 0 if report.dead == 0 else 1


def schedule(playlists: list[str]) -> int:
    from infra.pump import scheduled_event

    state = ensure_up()
    stack = _attached_stack(state)
    event = scheduled_event(f"{stack.stack_name}-CrawlerSchedule")
    if playlists:
        # A schedule's Input replaces the event, as EventBridge does.
        event = {"playlists": playlists}
    from infra.pump import Invoker

    result = Invoker({"CrawlerFunction": stack.handler("CrawlerFunction")}, stack.timeouts())("CrawlerFunction", event)
    print(json.dumps(result, indent=2, default=str))
    return 0


def sign_request(method: str, url: str, data: str, region: str, content_type: str = "application/json") -> int:
    """Send one SigV4-signed request for execute-api, as API Gateway's IAM authorizer expects, and print the reply."""
    import boto3
    import requests

    from infra.sigv4 import sign

    session = boto3.session.Session()
    credentials = session.get_credentials()
    if credentials is None:
        print("no AWS credentials to sign with (the local stack's are in config/local.env)", file=sys.stderr)
        return 2
    # @FILE sends the file's bytes, as curl does (an export is too large for one argument).
    body = Path(data[1:]).read_bytes() if data.startswith("@") else data.encode()
    headers = sign(method.upper(), url, credentials, region or session.region_name or "us-east-1", body,
                   {"content-type": content_type} if body else None)
    response = requests.request(method.upper(), url, data=body, headers=headers, timeout=30)
    print(response.status_code)
    print(response.text)
    return 0 if response.ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("up", "run"):
        sub = commands.add_parser(name)
        sub.add_argument("--extract", action="store_true", help="also pump ExtractQueue into the extractor")
        sub.add_argument("--api-port", type=int, default=0, help="loopback port of the HTTP API (0: a free one)")
        sub.add_argument("--no-api", action="store_true", help="do not serve the HTTP API")
        sub.add_argument("--write-auth", choices=("iam", "jwt"), default="iam",
                         help="how the protected writes are guarded, as the template's WriteAuth (default iam: SigV4)")
        sub.add_argument("--jwt-issuer", default="", help="with --write-auth jwt: the issuer URL of the tokens to accept")
        sub.add_argument("--jwt-audience", default="", help="with --write-auth jwt: the audience the tokens must name")
    commands.add_parser("down")
    commands.add_parser("status")
    exec_parser = commands.add_parser("exec")
    exec_parser.add_argument("cmd", nargs=argparse.REMAINDER)
    commands.add_parser("extract")
    schedule_parser = commands.add_parser("schedule")
    schedule_parser.add_argument("playlists", nargs="*")
    sign_parser = commands.add_parser("sign-request")
    sign_parser.add_argument("method")
    sign_parser.add_argument("url")
    sign_parser.add_argument("--data", default="", help="request body, or @FILE for a file's bytes")
    sign_parser.add_argument("--content-type", default="application/json", help="the body's type (default application/json)")
    sign_parser.add_argument("--region", default="", help="signing region (default: the session's)")
    args = parser.parse_args(argv)
    if args.command in {"up", "run"}:
        api_port = None if args.no_api else args.api_port
        try:
            parameters = write_auth_parameters(args.write_auth, args.jwt_issuer, args.jwt_audience)
        except ValueError as exc:
            parser.error(str(exc))
        return (run if args.command == "run" else up)(args.extract, api_port, parameters)
    if args.command == "down":
        return down()
    if args.command == "status":
        return status()
    if args.command == "exec":
        return exec_command(args.cmd)
    if args.command == "extract":
        return extract()
    if args.command == "sign-request":
        return sign_request(args.method, args.url, args.data, args.region, args.content_type)
    return schedule(args.playlists)
