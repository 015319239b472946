"""The web page's routes over the loopback gateway: GET /, GET /map, GET /app/{name}.

What the page does in a browser is tested in tests/web; here: what is served, with which headers,
and that nothing outside api/static/ can be reached.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import requests

from api.routes.web import CONTENT_SECURITY_POLICY, STATIC_DIR, assets


def test_the_page_is_served_at_root_and_at_map_with_a_strict_content_security_policy(served_api) -> None:
    url, _ = served_api
    page = (STATIC_DIR / "index.html").read_text()
    for path in ("/", "/map", "/?track=x&maxPerArtist=2"):
        response = requests.get(url + path, timeout=10)
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.text == page


def test_assets_carry_their_types_and_etags_and_revalidate_to_304(served_api) -> None:
    url, _ = served_api
    response = requests.get(f"{url}/app/app.js", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/javascript; charset=utf-8"
    assert response.text == (STATIC_DIR / "app.js").read_text()
    etag = response.headers["etag"]
    again = requests.get(f"{url}/app/app.js", headers={"If-None-Match": etag}, timeout=10)
    assert again.status_code == 304 and again.content == b""
    assert requests.get(f"{url}/app/style.css", timeout=10).headers["content-type"] == "text/css; charset=utf-8"


def test_only_files_of_api_static_are_reachable(served_api) -> None:
    url, _ = served_api
    for path in ("/app/handler.py", "/app/..%2Fhandler.py", "/app/%2e%2e%2fhandler.py", "/app/index.html", "/app/nope.js"):
        response = requests.get(url + path, timeout=10)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "asset_not_found", path
    # A path with a slash in it is not a route at all (API Gateway's own 404).
    assert requests.get(f"{url}/app/../api/handler.py", timeout=10).status_code == 404


def test_every_file_the_page_loads_is_served() -> None:
    """Each asset named by index.html or imported by a module is among the served assets, and none is unused."""
    served = set(assets())
    page = (STATIC_DIR / "index.html").read_text()
    wanted = set(re.findall(r'(?:src|href)="/app/([^"]+)"', page))
    for module in STATIC_DIR.glob("*.js"):
        wanted |= set(re.findall(r'from "\./([^"]+)"', module.read_text()))
    assert wanted <= served
    assert served - {"index.html"} == wanted, "a file in api/static that nothing loads"


def test_the_lambda_package_carries_the_assets(tmp_path: Path) -> None:
    """The ApiFunction's staged package (what sam build zips) holds every file the page serves."""
    repo = Path(__file__).resolve().parents[2]
    subprocess.run(["make", "-s", "stage-ApiFunction", f"STAGE_ROOT={tmp_path}"], cwd=repo, check=True,
                   capture_output=True, timeout=120)
    staged = tmp_path / "ApiFunction" / "api" / "static"
    assert sorted(p.name for p in staged.iterdir()) == sorted(assets())
    for name, asset in assets().items():
        assert (staged / name).read_bytes() == asset.body


def test_map_points_place_every_served_track_at_its_projection(served_api) -> None:
    from catalog.bundle import Projection

    url, bundle = served_api
    response = requests.get(f"{url}/map/points", timeout=10)
    assert response.status_code == 200
    body = response.json()
    assert body["indexVersion"] == bundle.manifest.version
    assert body["count"] == len(body["points"]) == bundle.manifest.count
    assert [p["trackId"] for p in body["points"]] == bundle.track_ids
    from api_testkit import sample_meta

    expected = Projection.fit(bundle.vectors).apply(bundle.vectors)  # the basis write_base fits
    metas = [sample_meta(track_id, i, [f"Artist {i % 9}"]) for i, track_id in enumerate(bundle.track_ids)]
    for point, (x, y), meta in zip(body["points"], expected, metas, strict=True):
        assert abs(point["x"] - x) < 1e-3 and abs(point["y"] - y) < 1e-3
        assert point["title"] == meta.title and point["artists"] == list(meta.artists)
        assert point["tag"] == max(meta.tags, key=lambda t: (meta.tags[t], t))


def test_a_catalogue_bigger_than_the_map_shows_an_even_sample_and_the_tracks_asked_for(served_api, monkeypatch) -> None:
    from api.routes import web

    url, bundle = served_api
    total = bundle.manifest.count
    monkeypatch.setenv("MAP_MAX_POINTS", "7")
    web._points_of.cache_clear()
    try:
        body = requests.get(f"{url}/map/points", timeout=10).json()
        assert (body["count"], body["total"]) == (len(body["points"]), total) == (7, total)
        assert [p["trackId"] for p in body["points"]] == [bundle.track_ids[k * total // 7] for k in range(7)]
        # The path or station the page draws: its tracks are placed even when the sample left them out.
        wanted = [t for t in bundle.track_ids if t not in {p["trackId"] for p in body["points"]}][:2]
        asked = requests.get(f"{url}/map/points", params=[("include", wanted[0]), ("include", wanted[1]),
                                                          ("include", wanted[0]), ("include", "not-a-served-id")], timeout=10).json()
        assert [p["trackId"] for p in asked["points"]] == [p["trackId"] for p in body["points"]] + wanted
        assert (asked["count"], asked["total"]) == (len(body["points"]) + 2, total)
    finally:
        web._points_of.cache_clear()
