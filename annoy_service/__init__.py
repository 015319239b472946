"""annoy_service: the index's one custodian.

Rebuilds the Annoy index when a Tracks stream batch changes a ready embedding
(:mod:`annoy_service.changes`), from every ready embedding of the current model
(:mod:`annoy_service.builder`), publishes it as a versioned bundle with
index/LATEST.json written last and announces it (:mod:`annoy_service.publisher`).
``python -m annoy_service`` does the same on demand (``make index``).
"""
