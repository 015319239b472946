"""The HTTP API: query-by-example recommendations from the published index (base + delta).

:mod:`api.handler` is the Lambda entry point (Powertools resolver);
:mod:`api.index_cache` keeps the current base + delta open; :mod:`api.served` is
the interface every route answers from; :mod:`api.recommend` answers from it; :mod:`api.tracks` reads the Tracks table and asks the crawler
to ingest a track.
"""
