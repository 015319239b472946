"""Every tunable number of the API, with its unit, in one place."""

from __future__ import annotations

K_DEFAULT = 10
K_MIN = 1
K_MAX = 100

# LATEST.json is read at most this often per container (env INDEX_RECHECK_S overrides).
INDEX_RECHECK_S_DEFAULT = 60.0
# Where bundles land in the function's ephemeral storage (env INDEX_DIR overrides).
INDEX_DIR_DEFAULT = "/tmp/soundslike-index"
# Map every page of tracks.ann at load (MAP_POPULATE; env INDEX_PREFAULT). In bench/api.py the load
# took no measurably longer, and at 100k the first queries' tail was lower with it in 3 of 4 runs,
# never higher (bench/RESULTS.md, "bench/api.py").
INDEX_PREFAULT_DEFAULT = True

# distinctArtists drops neighbours, so fetch this many times k and grow until k are found.
DISTINCT_OVERFETCH_FACTOR = 4
SIMILARITY_DECIMALS = 6

SPOTIFY_ID_PATTERN = r"^[0-9A-Za-z]{22}$"
CORS_ALLOW_ORIGIN_DEFAULT = "*"
CORS_MAX_AGE_S = 600

# Presigned URLs for the listen/ copies of local files live this long (env LISTEN_URL_TTL_S).
LISTEN_URL_TTL_S_DEFAULT = 300.0
