"""The HTTP API: query-by-example recommendations from the published Annoy index bundle.

:mod:`api.handler` is the Lambda entry point (Powertools resolver);
:mod:`api.index_cache` keeps the current bundle in memory; :mod:`api.recommend`
answers from it; :mod:`api.tracks` reads the Tracks table and asks the crawler
to ingest a track.
"""
