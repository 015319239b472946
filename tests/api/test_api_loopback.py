"""The api behind the loopback API Gateway: real HTTP requests, routes from template.yaml."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import boto3
import requests

from infra.http_gateway import http_api_functions, routes_for_function
from infra.sigv4 import sign
from infra.template import load_template

EXAMPLE = "4uLU6hMCjMI75M1A2tKUQC"


def test_recommendations_over_http_exclude_the_query_and_carry_cors(served_api) -> None:
    url, bundle = served_api
    response = requests.get(
        f"{url}/recommendations", params={"trackId": EXAMPLE, "k": 12}, headers={"Origin": "https://x.example"}, timeout=10
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["access-control-allow-origin"] == "*"
    body = response.json()
    assert body["indexVersion"] == bundle.manifest.version
    ids = [r["trackId"] for r in body["results"]]
    assert len(ids) == 12 and EXAMPLE not in ids and len(set(ids)) == 12


def _template_methods(path_template: str) -> str:
    """The Allow header API Gateway's routes imply for a path: every function's methods on it, HEAD with GET."""
    template = load_template()
    methods = {
        route.method
        for function in http_api_functions(template)
        for route in routes_for_function(template, function)
        if route.path == path_template
    }
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))


def test_paths_outside_the_routes_reach_the_default_route_and_get_the_documented_errors(served_api) -> None:
    url, _ = served_api
    for path in ("/tracks/a/b", "/nowhere"):
        response = requests.get(url + path, timeout=10)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "route_not_found"
    for method, path, template_path in (
        ("POST", "/", "/"),
        ("POST", "/recommendations", "/recommendations"),
        ("DELETE", f"/tracks/{EXAMPLE}", "/tracks/{trackId}"),
        # ByAudioFunction's route: a GET reaches ApiFunction's $default, which knows the path is POST only.
        ("GET", "/recommendations/by-audio", "/recommendations/by-audio"),
    ):
        response = requests.request(method, url + path, timeout=10)
        assert response.status_code == 405, (method, path)
        assert response.json()["error"]["code"] == "method_not_allowed"
        assert response.headers["Allow"] == _template_methods(template_path)


def test_errors_over_http_are_json_and_do_not_echo(served_api) -> None:
    url, _ = served_api
    response = requests.get(f"{url}/recommendations", params={"trackId": "drop table;", "k": "5"}, timeout=10)
    assert response.status_code == 400
    assert set(response.json()["error"]) == {"code", "message"}
    assert "drop" not in response.text
    response = requests.get(f"{url}/recommendations", params={"trackId": "Nope0000000000000000000"[:22]}, timeout=10)
    assert response.status_code == 404 and response.json()["error"]["code"] == "track_not_found"


def test_track_status_and_put_over_http(served_api) -> None:
    url, _ = served_api
    response = requests.get(f"{url}/tracks/{EXAMPLE}", timeout=10)
    assert response.status_code == 200
    assert response.json()["status"] == "ready" and response.json()["indexed"] is True
    # A write route: the gateway refuses it unsigned, as API Gateway's IAM authorizer does.
    unsigned = requests.put(f"{url}/tracks/{EXAMPLE}", timeout=10)
    assert unsigned.status_code == 403 and unsigned.json() == {"message": "Missing Authentication Token"}
    signed = signed_put(f"{url}/tracks/{EXAMPLE}")
    assert signed.status_code == 200 and signed.json()["status"] == "ready"
    assert signed_put(f"{url}/tracks/tooshort").status_code == 400


def signed_put(url: str) -> requests.Response:
    credentials = boto3.session.Session().get_credentials()
    return requests.put(url, headers=sign("PUT", url, credentials, "us-east-1"), timeout=10)


def test_parallel_requests_are_all_answered(served_api) -> None:
    url, bundle = served_api
    ids = bundle.track_ids[:40]

    def get(track_id: str) -> tuple[int, list[str]]:
        response = requests.get(f"{url}/recommendations", params={"trackId": track_id, "k": 5}, timeout=10)
        return response.status_code, [r["trackId"] for r in response.json()["results"]]

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(get, ids))
    assert all(status == 200 for status, _ in answers)
    assert all(track_id not in results for track_id, (_, results) in zip(ids, answers, strict=True))


def test_every_discovery_route_answers_over_http(served_api) -> None:
    url, bundle = served_api
    ids = bundle.track_ids
    search = requests.get(f"{url}/search", params={"q": "song 1"}, timeout=10)
    assert search.status_code == 200 and search.json()["results"][0]["title"] == "Song 1"
    several = requests.get(f"{url}/recommendations", params=[("trackId", ids[1]), ("trackId", ids[2]), ("k", 5)], timeout=10)
    assert several.status_code == 200 and several.json()["seeds"] == ids[1:3]
    created = requests.post(f"{url}/stations", json={"name": "Radio", "seeds": ids[:2]}, timeout=10)
    assert created.status_code == 201
    station = f"{url}/stations/{created.json()['stationId']}"
    played = requests.post(f"{station}/next", json={"n": 3}, timeout=10)
    assert played.status_code == 200 and len(played.json()["tracks"]) == 3
    assert requests.post(f"{station}/next", timeout=10).status_code == 200  # n defaults to 10
    feedback = requests.post(f"{station}/feedback", json={"trackId": played.json()["tracks"][0]["trackId"], "signal": "like"}, timeout=10)
    assert feedback.status_code == 204 and feedback.content == b""
    assert requests.patch(station, json={"styleWeight": 0.5}, timeout=10).json()["styleWeight"] == 0.5
    assert requests.get(station, timeout=10).json()["historyLength"] == 13
    continued = requests.post(f"{url}/playlists/continue", json={"seeds": ids[:2], "length": 4}, timeout=10)
    assert continued.status_code == 200 and len(continued.json()["tracks"]) == 4
    path = requests.get(f"{url}/path", params={"from": ids[3], "to": ids[4], "length": 5}, timeout=10)
    assert path.status_code == 200 and [t["trackId"] for t in path.json()["tracks"]][::4] == [ids[3], ids[4]]
    assert requests.delete(station, timeout=10).status_code == 204
    assert requests.get(station, timeout=10).status_code == 404


def test_browsers_may_call_the_listener_routes_cross_origin(served_api) -> None:
    url, _ = served_api
    for method in ("POST", "PATCH", "DELETE"):
        preflight = requests.options(
            f"{url}/stations/{'A' * 22}",
            headers={"Origin": "https://page.example", "Access-Control-Request-Method": method}, timeout=10,
        )
        assert preflight.status_code == 204
        assert method in preflight.headers["access-control-allow-methods"].split(",")
