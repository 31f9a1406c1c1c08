"""Writes tests/data/tf_checkpoint/ with TensorFlow's own Saver, the way TF-Slim saved its checkpoints.

Run where TensorFlow is installed (it is not a dependency): `python tests/data/make_tf_checkpoint.py`.
`expected_tensors()` rebuilds the same values without TensorFlow, for the reader's test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

HERE = Path(__file__).parent / "tf_checkpoint"


def expected_tensors() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    tensors = {
        "MobilenetV1/Conv2d_0/weights": rng.standard_normal((3, 3, 3, 8)).astype(np.float32),
        "MobilenetV1/Conv2d_0/BatchNorm/moving_variance": rng.uniform(0.5, 1.5, 8).astype(np.float32),
        "MobilenetV1/Conv2d_1_depthwise/depthwise_weights/ExponentialMovingAverage": rng.standard_normal(
            (3, 3, 8, 1)
        ).astype(np.float32),
        "global_step": np.array(123456, dtype=np.int64),
        "half": rng.standard_normal((2, 3)).astype(np.float16),
        "double": rng.standard_normal(5).astype(np.float64),
        "counts": np.arange(7, dtype=np.int32),
    }
    # Enough names with shared prefixes that the index spans several blocks (restarts, prefix sharing).
    for i in range(300):
        tensors[f"MobilenetV2/expanded_conv_{i}/project/BatchNorm/beta"] = np.full(4, i, dtype=np.float32)
    return tensors


def main() -> None:
    import tensorflow as tf

    tf.compat.v1.disable_eager_execution()
    variables = [tf.compat.v1.Variable(value, name=name) for name, value in expected_tensors().items()]
    saver = tf.compat.v1.train.Saver(variables)
    HERE.mkdir(exist_ok=True)
    with tf.compat.v1.Session() as session:
        session.run(tf.compat.v1.global_variables_initializer())
        saver.save(session, str(HERE / "model.ckpt"), write_meta_graph=False)
    (HERE / "checkpoint").unlink(missing_ok=True)  # the Saver's bookkeeping file, not part of the format


if __name__ == "__main__":
    main()
