"""bench/quality_served.py's plumbing: from the API's ranked pages to the arms' metrics, on a case worked by hand."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from bench.quality_served import (
    ServedPathError,
    demo_instrument_p10,
    dev_scores,
    ranked_through,
    ranking_order,
)

# Six clips: tracks a, b, c (two clips each); sources: a and b from package P, c from Q.
IDS = ["a0", "a1", "b0", "b1", "c0", "c1"]
TRACKS = ["a", "a", "b", "b", "c", "c"]
SOURCES = ["P", "P", "P", "P", "Q", "Q"]
# Each clip's ranking of the others, nearest first.
RANKINGS = {
    "a0": ["a1", "b0", "c0", "b1", "c1"],  # own track at rank 1
    "a1": ["c0", "c1", "a0", "b0", "b1"],  # rank 3
    "b0": ["b1", "a0", "a1", "c0", "c1"],  # rank 1
    "b1": ["c0", "a0", "c1", "a1", "b0"],  # rank 5
    "c0": ["c1", "a0", "b0", "a1", "b1"],  # rank 1
    "c1": ["a0", "c0", "b0", "a1", "b1"],  # rank 2
}


class PagedApi:
    """Answers like GET /recommendations over RANKINGS: the first k not excluded, and counts the requests."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, int, tuple[str, ...]]] = []

    def __call__(self, track_id: str, k: int, exclude: Sequence[str]) -> list[str]:
        self.requests.append((track_id, k, tuple(exclude)))
        return [other for other in RANKINGS[track_id] if other not in exclude][:k]


def test_pages_of_k_max_with_the_ranked_ids_excluded_give_every_clip_the_whole_ranking() -> None:
    api = PagedApi()
    rankings = ranked_through(api, IDS, k_max=2, exclude_max=4)
    assert rankings == RANKINGS
    # Five others in pages of 2, 2 and 1: three requests per clip, each excluding what came before.
    assert api.requests[:3] == [("a0", 2, ()), ("a0", 2, ("a1", "b0")), ("a0", 1, ("a1", "b0", "c0", "b1"))]
    assert len(api.requests) == 3 * len(IDS)


def test_a_catalogue_the_route_cannot_rank_whole_is_refused_before_any_request() -> None:
    api = PagedApi()
    with pytest.raises(ServedPathError, match="cannot be ranked whole"):
        ranked_through(api, IDS, k_max=2, exclude_max=3)  # the third page would exclude 4
    assert api.requests == []


def test_an_api_that_stops_short_is_an_error_not_a_shorter_ranking() -> None:
    with pytest.raises(ServedPathError, match="ranked 2 of the 5"):
        ranked_through(lambda track_id, k, exclude: [] if exclude else RANKINGS[track_id][:2], IDS, 2, 10)


def test_the_order_array_and_the_metrics_of_a_known_ranking() -> None:
    order = ranking_order(IDS, RANKINGS)
    assert order[0].tolist() == [1, 2, 4, 3, 5]

    scores = dev_scores(order, TRACKS, SOURCES, k=2)
    # Own-track ranks 1, 3, 1, 5, 1, 2: hit@2 for 4 of 6, MRR the mean of 1, 1/3, 1, 1/5, 1, 1/2.
    assert scores.same_track_hit10 == pytest.approx(4 / 6)
    assert scores.same_track_mrr == pytest.approx((1 + 1 / 3 + 1 + 1 / 5 + 1 + 1 / 2) / 6)
    # Source precision@2 among other tracks' clips: a0 [b0 c0] 1/2, a1 [c0 c1] 0, b0 [a0 a1] 1,
    # b1 [c0 a0] 1/2; c0 and c1 are left out (no other track of source Q could score).
    assert scores.source_p10 == pytest.approx((0.5 + 0 + 1 + 0.5) / 4)

    # As pieces and instruments: the same numbers through the demo metric.
    assert demo_instrument_p10(order, TRACKS, SOURCES, k=2) == pytest.approx(scores.source_p10)


@pytest.mark.parametrize(
    "broken",
    [
        {**RANKINGS, "a0": ["a1", "b0", "c0", "b1"]},  # one clip missing
        {**RANKINGS, "a0": ["a1", "b0", "c0", "b1", "a0"]},  # the query itself
        {**RANKINGS, "a0": ["a1", "b0", "c0", "b1", "zz"]},  # a track that is no clip of the set
    ],
)
def test_a_ranking_that_is_not_every_other_clip_once_is_refused(broken: dict[str, list[str]]) -> None:
    with pytest.raises(ValueError, match="not every other clip once"):
        ranking_order(IDS, broken)


def test_two_clips_with_one_track_id_are_refused() -> None:
    with pytest.raises(ValueError, match="one track id"):
        ranking_order(["a0", "a0"], {"a0": ["a0"]})


def test_the_order_array_is_what_the_arms_rank_from_vectors() -> None:
    """A ranking built from exact cosines gives the order bench/quality_arms.py computes from the same vectors."""
    from bench.quality_arms import order_by_similarity

    vectors = np.random.default_rng(3).normal(size=(len(IDS), 4)).astype(np.float32)
    arms_order = order_by_similarity(vectors)
    rankings = {IDS[i]: [IDS[j] for j in arms_order[i]] for i in range(len(IDS))}
    assert np.array_equal(ranking_order(IDS, rankings), arms_order)
