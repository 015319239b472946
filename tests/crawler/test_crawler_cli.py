"""python -m crawler: make crawl PLAYLIST=… and make spotify-login."""

from __future__ import annotations

import json
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from crawler_aws import BUCKET, SECRET, TABLE, put_secret, read_secret, table_item
from crawler_fakes import CLIENT_ID, CLIENT_SECRET, Fakes, mp3_bytes, playlist_entry, spotify_id, spotify_track

from catalog.keys import local_track_id
from crawler.__main__ import main
from crawler.pipeline import build_crawler, crawl_playlist
from crawler.settings import CrawlerSettings

REPO = Path(__file__).resolve().parents[2]


def _browser(capsys: pytest.CaptureFixture[str]):
    """The user's browser: opens the printed URL, approves, and pastes the address it lands on."""

    def paste(prompt: str = "") -> str:
        url = re.search(r"(http://127\.0\.0\.1:\d+/authorize\?\S+)", capsys.readouterr().out).group(1)
        return requests.get(url, allow_redirects=False, timeout=5).headers["Location"]

    return paste


def test_crawl_prints_progress_and_a_summary(aws: None, crawler_env: Fakes, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "A - One.mp3").write_bytes(mp3_bytes(21))
    (tmp_path / "B - Two.mp3").write_bytes(mp3_bytes(22))
    assert main([str(tmp_path)]) == 0
    out = capsys.readouterr()
    assert "[2/2]" in out.err and "A - One" in out.err
    assert re.search(r"new:\s+2 \(file: 2\)", out.out)
    assert re.search(r"already known:\s+0", out.out)
    assert table_item(local_track_id(mp3_bytes(21)))["title"] == "One"


def test_crawl_exits_non_zero_when_a_source_cannot_be_read(aws: None, crawler_env: Fakes, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["/no/such/folder"]) == 1
    assert "not an existing folder" in capsys.readouterr().out


def test_login_stores_the_refresh_token_in_the_secret(aws: None, crawler_env: Fakes, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    put_secret({"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "unused_placeholder": "x"})
    monkeypatch.setattr("builtins.input", _browser(capsys))
    assert main(["login"]) == 0
    stored = read_secret()
    assert stored["refresh_token"] in crawler_env.spotify.refresh_tokens
    assert stored["unused_placeholder"] == "x"
    playlist = spotify_id(5, "pl")
    crawler_env.spotify.add_playlist(playlist, "Mine", [playlist_entry(spotify_track(spotify_id(1), "T", ["A"]))])
    crawler = build_crawler(TABLE, BUCKET, SECRET, CrawlerSettings.from_env())
    assert crawl_playlist(crawler, playlist).no_preview["not_found"] == 1
    # make spotify-login asks for every scope the library references need.
    (authorize,) = crawler_env.spotify.requests_to(r"^/authorize$")
    assert set(authorize.query["scope"].split()) == {
        "playlist-read-private", "playlist-read-collaborative", "user-library-read", "user-top-read", "user-read-recently-played",
    }


def test_login_without_aws_writes_a_private_local_file(crawler_env: Fakes, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / ".local" / "spotify.json"
    monkeypatch.delenv("SPOTIFY_SECRET_ID")
    monkeypatch.setenv("SPOTIFY_LOCAL_CREDENTIALS", str(path))
    monkeypatch.setenv("SPOTIFY_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("SPOTIFY_CLIENT_SECRET", CLIENT_SECRET)
    monkeypatch.setattr("builtins.input", _browser(capsys))
    assert main(["login"]) == 0
    stored = json.loads(path.read_text())
    assert stored["refresh_token"] in crawler_env.spotify.refresh_tokens
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_login_refuses_a_pasted_address_from_another_attempt(crawler_env: Fakes, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPOTIFY_SECRET_ID")
    monkeypatch.setenv("SPOTIFY_LOCAL_CREDENTIALS", str(tmp_path / "spotify.json"))
    monkeypatch.setenv("SPOTIFY_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("SPOTIFY_CLIENT_SECRET", CLIENT_SECRET)
    monkeypatch.setattr("builtins.input", lambda prompt="": "http://127.0.0.1:8888/callback?code=abc&state=forged")
    assert main(["login"]) == 2
    assert "state mismatch" in capsys.readouterr().err
    assert not (tmp_path / "spotify.json").exists()


def test_login_without_app_credentials_says_where_to_put_them(crawler_env: Fakes, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPOTIFY_SECRET_ID")
    monkeypatch.setenv("SPOTIFY_LOCAL_CREDENTIALS", str(tmp_path / "spotify.json"))
    assert main(["login"]) == 2
    assert "SPOTIFY_CLIENT_ID" in capsys.readouterr().err


def test_python_m_crawler_runs_as_a_module() -> None:
    done = subprocess.run([sys.executable, "-m", "crawler", "--help"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "SOURCE" in done.stdout and "deezer:playlist:ID" in done.stdout


def test_make_crawl_takes_deezer_references(aws: None, user_secret: str, crawler_env: Fakes, capsys: pytest.CaptureFixture[str]) -> None:
    from crawler_fakes import DeezerList

    crawler_env.deezer.albums[302127] = DeezerList("Discovery", crawler_env.deezer.add_many(2))
    assert main(["deezer:album:302127"]) == 0
    out = capsys.readouterr()
    assert "new:           2 (deezer: 2)" in out.out
    assert main(["deezer:playlist:1"]) == 1
    assert "error: deezer:playlist:1: deezer:playlist:1 not found" in capsys.readouterr().out
