"""CrawlerFunction's handler with the recorded Scheduled Event shapes (tests/events/crawler_*.json)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.parameters import clear_caches
from crawler_aws import REGION, table_item
from crawler_fakes import Fakes, playlist_entry, spotify_id, spotify_track
from iam_recorder import Call, recorder

from crawler.handler import BadEventError, lambda_handler, split_playlists
from infra.iam import PolicyChecker
from infra.template import TEMPLATE_PATH, load_template

EVENTS = Path(__file__).resolve().parent.parent / "events"
# Named as CloudFormation names a generated parameter: no leading slash.
PARAM = "CFN-PlaylistsParameter-a1B2c3D4e5F6"
PLAYLIST = spotify_id(11)  # the id in crawler_scheduled_input.json


@dataclass
class Context:
    function_name: str = "soundslike-CrawlerFunction"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:soundslike-CrawlerFunction"
    aws_request_id: str = "52fdfc07-2182-154f-163f-5f0f9a621d72"


def _event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


@pytest.fixture
def scheduled(aws: None, user_secret: str, crawler_env: Fakes, monkeypatch: pytest.MonkeyPatch) -> Fakes:
    monkeypatch.setenv("PLAYLISTS_PARAM", PARAM)
    clear_caches()
    track = spotify_track(spotify_id(300), "Scheduled", ["Cron"], isrc="USCRN0000001")
    crawler_env.deezer.add("Scheduled", "Cron", "USCRN0000001")
    crawler_env.spotify.add_playlist(PLAYLIST, "Daily", [playlist_entry(track)])
    yield crawler_env
    clear_caches()


def _set_param(value: str) -> None:
    boto3.client("ssm", region_name=REGION).put_parameter(Name=PARAM, Value=value, Type="String", Overwrite=True)


def test_the_scheduled_event_crawls_the_playlists_in_the_ssm_parameter(scheduled: Fakes) -> None:
    _set_param(f"spotify:playlist:{PLAYLIST}")
    result = lambda_handler(_event("crawler_scheduled_event.json"), Context())
    assert result["new"] == 1 and result["errors"] == []
    assert table_item(spotify_id(300))["playlists"] == {PLAYLIST}


def test_none_in_the_parameter_means_no_playlists(scheduled: Fakes) -> None:
    _set_param("none")
    result = lambda_handler(_event("crawler_scheduled_event.json"), Context())
    assert result["new"] == 0 and result["sources"] == []
    assert scheduled.spotify.log == []


def test_playlists_in_the_event_input_win_over_the_parameter(scheduled: Fakes) -> None:
    result = lambda_handler(_event("crawler_scheduled_input.json"), Context())
    assert result["new"] == 1
    assert result["sources"] == [f"spotify:playlist:{PLAYLIST}"]


def test_an_unreadable_playlist_is_reported_in_the_result_not_raised(scheduled: Fakes) -> None:
    scheduled.spotify.add_playlist(spotify_id(12), "Theirs", [], metadata_only=True)
    result = lambda_handler({"playlists": [spotify_id(12), PLAYLIST]}, Context())
    assert result["new"] == 1
    assert len(result["errors"]) == 1 and "February 2026" in result["errors"][0]


@pytest.mark.parametrize("playlists", [[1, 2], "not-a-playlist", {"id": PLAYLIST}])
def test_a_malformed_event_is_refused_with_a_clear_error(scheduled: Fakes, playlists: Any) -> None:
    with pytest.raises(BadEventError):
        lambda_handler({"playlists": playlists}, Context())


@pytest.mark.parametrize(("value", "expected"), [("none", []), ("", []), (" NONE ", []), ("a, b,,c", ["a", "b", "c"]), ("a\nb", ["a", "b"])])
def test_parameter_values_split_on_commas(value: str, expected: list[str]) -> None:
    assert split_playlists(value) == expected


def test_the_parameter_takes_every_remote_reference_kind(scheduled: Fakes) -> None:
    from crawler_fakes import DeezerList

    entries = scheduled.deezer.add_many(2)
    scheduled.deezer.playlists[908622995] = DeezerList("Public", entries)
    scheduled.deezer.chart = scheduled.deezer.add_many(1, prefix="Chart")
    scheduled.spotify.saved = [spotify_track(spotify_id(301), "Saved", ["Me"], isrc=entries[0].isrc)]
    _set_param(f"spotify:playlist:{PLAYLIST}, https://www.deezer.com/playlist/908622995, deezer:chart, spotify:me:tracks")
    result = lambda_handler(_event("crawler_scheduled_event.json"), Context())
    assert result["errors"] == []
    assert result["sources"] == [f"spotify:playlist:{PLAYLIST}", "deezer:playlist:908622995", "deezer:chart", "spotify:me:tracks"]
    # The saved track is the Deezer playlist's first recording (same ISRC): linked, not new.
    assert (result["new"], result["known"]) == (4, 1)
    assert table_item(f"dz-{entries[0].id}")["playlists"] == {"deezer:playlist:908622995", "spotify:me:tracks"}


def test_a_reference_of_no_kind_is_refused_naming_the_forms(scheduled: Fakes) -> None:
    with pytest.raises(BadEventError, match="deezer:playlist:ID"):
        lambda_handler({"playlists": ["deezer:podcast:1"]}, Context())


# ---------------------------------------------------------------- IAM, proven with the calls the crawl makes


def _template_copy(tmp_path: Path, name: str, edit: Callable[[dict[str, Any]], None]) -> Path:
    template = load_template(TEMPLATE_PATH)
    edit(template["Resources"]["CrawlerFunction"]["Properties"]["Policies"][0]["Statement"])
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(template))
    return path


def _statement_with(statements: list[dict[str, Any]], action: str) -> dict[str, Any]:
    return next(s for s in statements if action in s["Action"])


def _slashless_parameter_arn(statements: list[dict[str, Any]]) -> None:
    # The template's SSM resource before the fix: …:parameter${PlaylistsParameter}.
    statement = _statement_with(statements, "ssm:GetParameter")
    statement["Resource"]["Fn::Sub"] = statement["Resource"]["Fn::Sub"].replace("parameter/${", "parameter${")


def _without_batch_get(statements: list[dict[str, Any]]) -> None:
    _statement_with(statements, "dynamodb:BatchGetItem")["Action"].remove("dynamodb:BatchGetItem")


def _denied(template: Path, calls: list[Call]) -> set[tuple[str, str]]:
    checker = PolicyChecker(template)
    return {
        (call.operation, decision.request.action)
        for call in calls
        for decision in checker.check(call.function, call.service, call.operation, call.params, call.region, call.env)
        if not decision.allowed
    }


def test_every_call_of_a_scheduled_crawl_is_allowed_and_broken_policies_are_caught(
    scheduled: Fakes, tmp_path: Path
) -> None:
    _set_param(f"spotify:playlist:{PLAYLIST}")
    with recorder().capture() as calls:
        assert lambda_handler(_event("crawler_scheduled_event.json"), Context())["new"] == 1
    made = {(call.function, call.service, call.operation) for call in calls}
    assert {("CrawlerFunction", "ssm", "GetParameter"), ("CrawlerFunction", "dynamodb", "BatchGetItem"),
            ("CrawlerFunction", "s3", "PutObject")} <= made

    assert _denied(TEMPLATE_PATH, calls) == set()
    assert _denied(_template_copy(tmp_path, "slashless", _slashless_parameter_arn), calls) == {
        ("GetParameter", "ssm:GetParameter")
    }
    assert _denied(_template_copy(tmp_path, "no-batch-get", _without_batch_get), calls) == {
        ("BatchGetItem", "dynamodb:BatchGetItem")
    }
