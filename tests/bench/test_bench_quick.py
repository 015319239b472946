"""Every benchmark runs in --quick mode and ends with one JSON line carrying its issue's figures.

The figures themselves are not asserted (these machines are noisy); that the scripts keep
running and keep reporting what their issues ask for is.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from infra.template import REPO_ROOT

# Each takes over 20 s, so `make test` leaves them to `make bench-quick`.
pytestmark = [pytest.mark.model, pytest.mark.bench]

QUICK_TIMEOUT_S = 240

KEYS = {
    "extract": ("handler_clips_per_s", "handler_vs_original", "clips_per_s", "clips_per_s_batch16", "vs_original_batch16",
                "peak_rss_mb", "descriptors_overhead", "extract_cost_vs_penultimate"),
    "descriptors": ("tempo_accuracy1", "tempo_accuracy2", "key_weighted_score", "key_accuracy", "loudness_error_lu",
                    "descriptors_vs_embedding"),
    "crawl": ("tracks_per_s", "speedup_vs_sequential", "deezer_tracks_per_s", "deezer_speedup_vs_sequential",
              "deezer_cpu_ms_per_track", "deezer_speedup_bound"),
    # The 100k / 1M figures come from the full run only; --quick reports them as null.
    "index": ("recall_at_10", "recall_at_100", "speedup_vs_exact_100k", "build_s_1m", "voyager"),
    "api": ("speedup_vs_download", "p50_ms_10k", "p99_ms_10k", "cold_start_s_10k", "metadata_open_ms_10k",
            "peak_rss_mb_10k", "p99_ms_delta_10k"),
    "quality": ("instrument_p10", "instrument_chance", "mfcc_instrument_p10", "composer_p10"),
    "discovery": (
        "multiseed_instrument_p10", "singleseed_instrument_p10", "station_dislike_drop", "station_like_gain",
        "station_repeats", "path_monotone_share", "path_mean_step_similarity", "continuation_mean_step_similarity",
        "continuation_baseline_mean_step_similarity",
    ),
    "personal": ("foryou_precision_at_20", "affinity_spearman", "next_track_hit_at_10", "plays_per_s",
                 "foryou_precision_at_20_most_played_neighbours", "foryou_precision_at_20_random",
                 "affinity_spearman_centroid", "affinity_spearman_constant",
                 "next_track_hit_at_10_last_track_neighbours", "next_track_hit_at_10_content_continuation"),
}


@pytest.mark.parametrize("bench", sorted(KEYS))
def test_quick_benchmark_ends_with_one_json_line_of_its_figures(bench: str) -> None:
    run = subprocess.run([sys.executable, str(REPO_ROOT / "bench" / f"{bench}.py"), "--quick"], cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=QUICK_TIMEOUT_S)
    assert run.returncode == 0, run.stderr[-2000:]
    figures = json.loads(run.stdout.strip().splitlines()[-1])
    missing = [key for key in KEYS[bench] if key not in figures]
    assert not missing, f"bench/{bench}.py --quick does not report {missing}"
    assert figures[KEYS[bench][0]] is not None
