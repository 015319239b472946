"""annoy_service: the index's one custodian.

A Tracks stream batch becomes a new small delta over the current base, read from
the records' images alone (:mod:`annoy_service.changes`, :mod:`annoy_service.service`);
compaction folds the delta into a new base from the previous base's vectors; a full
rebuild from the table (:mod:`annoy_service.builder`) serves recovery and the weekly
reconcile. LATEST.json is written last and conditionally, then announced
(:mod:`annoy_service.publisher`). ``python -m annoy_service`` is ``make index``.
"""
