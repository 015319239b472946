"""The track catalogue's contracts, shared by every function of soundslike.

What the parts agree on (see ARCHITECTURE.md): track ids and S3 keys
(:mod:`catalog.keys`), the Tracks item layout and embedding encoding
(:mod:`catalog.records`), the index bundle and its LATEST pointer
(:mod:`catalog.bundle`, moved to and from S3 by :mod:`catalog.bundle_store`), settings read from the environment
(:mod:`catalog.settings`) and thin S3 / DynamoDB adapters (:mod:`catalog.storage`).
"""
