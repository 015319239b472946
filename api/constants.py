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

# GET /search
SEARCH_LIMIT_DEFAULT = 20
SEARCH_LIMIT_MAX = 100
SEARCH_QUERY_MAX_CHARS = 199  # a query of 200 characters or more is refused (400)

# Lists from several tracks: /recommendations seeds, /playlists/continue seeds, stations' seeds
MAX_SEEDS = 20
EXCLUDE_MAX = 500
ARTIST_CAP_MAX = 100
DURATION_MAX_MS = 24 * 3600 * 1000

# Stations
STATION_MAX_SEEDS = 20
STATION_NAME_MAX_CHARS = 100
STATION_WEIGHT_MAX = 10.0
STATION_NEXT_DEFAULT = 10
STATION_NEXT_MAX = 50

# POST /playlists/continue
CONTINUE_LENGTH_DEFAULT = 20
CONTINUE_LENGTH_MAX = 100

# GET /path
PATH_LENGTH_MIN = 2
PATH_LENGTH_DEFAULT = 10
PATH_LENGTH_MAX = 50

# Presigned URLs for the listen/ copies of local files live this long (env LISTEN_URL_TTL_S).
LISTEN_URL_TTL_S_DEFAULT = 300.0

# GET /users/{userId}/recommendations: the k=20, and at most this many tracks by one artist.
PERSONAL_K_DEFAULT = 20
PERSONAL_MAX_PER_ARTIST_DEFAULT = 2
