"""The extractor: preview audio → MSD_musicnn embedding and tags → Tracks item.

constants (every parameter) · audio (bytes → 16 kHz samples) · features (log-mel
patches) · model (Keras forward pass + checkpoint loading) · embed (Embedder) ·
pipeline (one S3 object → one Tracks update) · handler (SQS batch Lambda) ·
cli (``python -m extractor FILE...``) · original (the wheel's graph, for parity checks).
"""
