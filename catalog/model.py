"""The embedding model's identity, shared by the extractor (which labels every embedding
with it) and annoy_service (which indexes only embeddings that carry it).

A deployment that bumps the id sets ``MODEL_ID`` for both functions or for neither
(infra/template_checks.py enforces it): one side alone would make the builder skip
every item and the API serve the old index forever.
"""

from __future__ import annotations

from catalog.settings import env_str

MODEL_ID = "musicnn-msd-midlevel-v2"
MODEL_ID_VARIABLE = "MODEL_ID"


def configured_model_id() -> str:
    """The model id this process writes or indexes: ``MODEL_ID`` when set, else :data:`MODEL_ID`."""
    return env_str(MODEL_ID_VARIABLE, MODEL_ID)
