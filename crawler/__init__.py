"""The crawler: finds tracks (Spotify playlists, local folders), fetches a preview of each
and hands it to the pipeline as a pending Tracks item plus previews/{track_id}.{ext} in S3.

:mod:`crawler.pipeline` is the one code path for the scheduled Lambda
(:mod:`crawler.handler`), the CLI (``python -m crawler``) and the API's PUT /tracks/{trackId}.
"""
