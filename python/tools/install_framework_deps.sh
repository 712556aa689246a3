#!/usr/bin/env bash
# Installs what the JAX/optax/Flax, Keras 3 and notebook tests need into $PYTHON (default
# python3): CPU wheels from PyPI, pinned. jax[cpu] is jax + jaxlib (CPU); Keras runs on the JAX
# backend and on the torch that install_test_deps.sh installs; nbclient + ipykernel + nbformat run
# a real notebook headless, websocket-client reads the served page's WebSocket.
# The transitive packages are pinned too (a full resolution on top of install_test_deps.sh, by
# pip install --dry-run --report); pip adds anything the base image lacks.
# Measured on the 2-core machine: about 20-40 s, ~150 MB download.
set -euo pipefail
PY="${PYTHON:-python3}"
retry() { local n; for n in 1 2 3; do "$@" && return 0; echo "retry $n: $*" >&2; sleep 5; done; return 1; }

retry "$PY" -m pip install -q --disable-pip-version-check \
  "jax[cpu]==0.10.2" jaxlib==0.10.2 flax==0.12.8 optax==0.2.8 keras==3.15.1 \
  nbclient==0.11.0 ipykernel==7.4.0 nbformat==5.11.1 websocket-client==1.9.2 \
  ml_dtypes==0.7.0 opt_einsum==3.4.0 scipy==1.17.1 \
  msgpack==1.2.4 orbax-checkpoint==0.12.8 tensorstore==0.1.86 treescope==0.1.10 \
  optree==0.20.0 namex==0.1.0 h5py==3.16.0 etils==1.15.0 zipp==4.1.2 humanize==4.17.0 \
  aiofiles==25.1.0 simplejson==4.3.0 uvloop==0.23.0 \
  jupyter_client==8.10.0 jupyter_core==5.9.1 pyzmq==27.3.0 tornado==6.6.1 comm==0.2.3 \
  debugpy==1.8.22 nest-asyncio2==1.7.4 fastjsonschema==2.22.3 platformdirs==4.14.9 \
  prometheus_client==0.26.0
"$PY" - <<'PY'
import jax, jax.numpy as jnp, optax, flax, nbclient, ipykernel, nbformat, websocket  # noqa: E401,F401
assert jax.devices()[0].platform == "cpu"
assert float(jax.grad(lambda x: (x * x).sum())(jnp.ones(3))[0]) == 2.0
import importlib.util
assert importlib.util.find_spec("keras") is not None
print("jax", jax.__version__, "flax", flax.__version__, "optax", optax.__version__, "nbclient", nbclient.__version__)
PY
KERAS_BACKEND=jax "$PY" -c "import keras; print('keras', keras.__version__, keras.backend.backend())"
