"""Run by test_keras.py in a subprocess per backend (KERAS_BACKEND is read once, at import):
fits a small MLP with plain SGD and GradToneCallback, and saves the initial weights and the data.

    KERAS_BACKEND=jax python3 keras_fit.py OUT_DIR
"""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

import keras  # noqa: E402

from gradtone_hook.keras import GradToneCallback  # noqa: E402

out = sys.argv[1]
rng = np.random.default_rng(0)
x = rng.normal(size=(80, 4)).astype("float32")
y = (x @ rng.normal(size=(4, 1)) + 0.1).astype("float32")
keras.utils.set_random_seed(0)
model = keras.Sequential(
    [keras.Input((4,)), keras.layers.Dense(8, activation="tanh", name="hidden"), keras.layers.Dense(1, name="out")]
)
model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05), loss="mse")
np.savez(os.path.join(out, "init.npz"), *model.get_weights(), x=x, y=y)
cb = GradToneCallback(to=os.path.join(out, "frames.jsonl"), wall_time=False, strict=True)
hist = model.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0, callbacks=[cb])
# A fit without the callback writes nothing more (its compiled step no longer holds the wrapper);
# a later fit with a new one goes on numbering from optimizer.iterations.
model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
cb2 = GradToneCallback(to=os.path.join(out, "frames2.jsonl"), wall_time=False, strict=True)
model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0, callbacks=[cb2])
print(keras.backend.backend(), cb.step_errors, hist.history["loss"][0], hist.history["loss"][-1])
