"""The wheel's original MSD_musicnn graph, run as-is under TF 2.x: the reference.

Used by the parity test and the benchmark only, never by the handler. The .meta
graph is a TF 1 training graph; its ``_output_shapes`` attributes make import
fail under TF 2.x (a FusedBatchNormGrad shape error), so they are dropped first.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf
from numpy.typing import NDArray
from tensorflow.core.protobuf import meta_graph_pb2

from extractor import model
from extractor.model import META_GRAPH_FILE, SERVED_OUTPUTS, checkpoint_prefix, weights_dir

INPUT = "model/Placeholder:0"
IS_TRAINING = "model/Placeholder_2:0"
# The graph's tensor for each of extractor.model's outputs. The mid-level features are the
# flatten that feeds batch_normalization_9 (the back-end's first batch norm).
TENSORS = {
    model.TAGGRAM: "model/Sigmoid:0",
    model.MIDLEVEL: "model/Flatten/flatten/Reshape:0",
    model.PENULTIMATE: "model/batch_normalization_10/batchnorm/add_1:0",
}


class OriginalGraph:
    """A tf.compat.v1 session over the restored original graph."""

    def __init__(self, folder: Path | None = None) -> None:
        folder = folder or weights_dir()
        meta = meta_graph_pb2.MetaGraphDef()
        meta.ParseFromString((folder / META_GRAPH_FILE).read_bytes())
        for node in meta.graph_def.node:
            if "_output_shapes" in node.attr:
                del node.attr["_output_shapes"]
        self.graph = tf.Graph()
        with self.graph.as_default():
            saver = tf.compat.v1.train.import_meta_graph(meta, clear_devices=True)
            self.session = tf.compat.v1.Session(graph=self.graph)
            saver.restore(self.session, checkpoint_prefix(folder))

    def run(
        self, patches: NDArray[np.float32], outputs: Sequence[str] = SERVED_OUTPUTS
    ) -> tuple[NDArray[np.float32], ...]:
        """The named ``outputs`` (extractor.model's names: by default taggram (n, 50) and midlevel
        (n, 1506)) for log-mel patches (n, 187, 96), in that order."""
        fetched = self.session.run([TENSORS[name] for name in outputs], feed_dict={INPUT: patches, IS_TRAINING: False})
        return tuple(fetched)

    def close(self) -> None:
        self.session.close()
