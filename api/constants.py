"""Every tunable number of the API, with its unit, in one place."""

from __future__ import annotations

K_DEFAULT = 10
K_MIN = 1
K_MAX = 100

# LATEST.json is read at most this often per container (env INDEX_RECHECK_S overrides). A read is
# one small GET; with the builder's 30 s debounce a new track is served within about 45 s of its
# delta (bench/rebuild.py, time_to_recommendable_s).
INDEX_RECHECK_S_DEFAULT = 15.0
# Map every page of tracks.ann at load (MAP_POPULATE; env INDEX_PREFAULT). In bench/api.py the load
# took no measurably longer, and at 100k the first queries' tail was lower with it in 3 of 4 runs,
# never higher (bench/RESULTS.md, "bench/api.py").
INDEX_PREFAULT_DEFAULT = True

SIMILARITY_DECIMALS = 6

CORS_ALLOW_ORIGIN_DEFAULT = "*"
CORS_MAX_AGE_S = 600

# Presigned URLs for the listen/ copies of local files live this long (env LISTEN_URL_TTL_S).
LISTEN_URL_TTL_S_DEFAULT = 300.0
