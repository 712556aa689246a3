#!/usr/bin/env bash
# Installs what the hook's torch tests need into $PYTHON (default: python3, the interpreter that
# pytest and the Rust tests spawning `python3` use): CPU-usable torch, Lightning, transformers
# (+ accelerate, which its Trainer needs) and setuptools.
# Everything is pinned; measured on the 2-core CI machine: about 3-4 minutes, ~2.5 GB download.
#
# Why --no-deps with explicit lists: every PyPI torch wheel for Linux x86_64 is a CUDA build.
# `import torch` needs the CUDA shared libraries that libtorch_cuda.so links (cudart, cublas,
# cufft, cufile, cupti, cusparse(+nvjitlink), cusparseLt, nccl, cudnn, nvrtc, nvshmem), even
# without a GPU; it does not need triton, cusolver, nvtx, cccl or cuda-bindings, which a plain
# `pip install torch lightning transformers` would also pull (~1 GB more). The lists below are
# a full resolution of the pinned packages (pip install --dry-run --report) less those.
set -euo pipefail
PY="${PYTHON:-python3}"
pip_install() { "$PY" -m pip install -q --disable-pip-version-check --no-deps "$@"; }
retry() { local n; for n in 1 2 3; do "$@" && return 0; echo "retry $n: $*" >&2; sleep 5; done; return 1; }

retry pip_install torch==2.15.0 \
  nvidia-cuda-runtime==13.2.86 nvidia-cublas==13.4.1.3 nvidia-cuda-cupti==13.2.86 \
  nvidia-cuda-nvrtc==13.2.86 nvidia-cufft==12.2.0.57 nvidia-cufile==1.17.1.22 \
  nvidia-cusparse==12.7.10.12 nvidia-nvjitlink==13.5.37 nvidia-cusparselt-cu13==0.8.1 \
  nvidia-nccl-cu13==2.30.7 nvidia-cudnn-cu13==9.26.0.51 nvidia-nvshmem-cu13==3.7.2
retry pip_install \
  lightning==2.6.6 pytorch-lightning==2.6.6 lightning-utilities==0.15.3 torchmetrics==1.9.0 \
  transformers==5.24.0 accelerate==1.15.0 huggingface_hub==2.4.0 tokenizers==0.23.3 \
  safetensors==0.8.0 hf-xet==1.8.0 psutil==7.2.2 setuptools==84.2.1 \
  filelock==4.3.1 typing_extensions==4.16.0 sympy==1.14.0 mpmath==1.3.0 networkx==3.6.1 \
  Jinja2==3.1.6 MarkupSafe==3.0.4 fsspec==2026.9.0 numpy==2.4.6 packaging==26.4 PyYAML==6.0.4 \
  regex==2026.11.19 tqdm==4.70.1 \
  aiohttp==3.14.5 aiohappyeyeballs==2.7.1 aiosignal==1.4.0 attrs==26.1.0 frozenlist==1.8.0 \
  multidict==7.2.1 propcache==0.5.4 yarl==1.25.1 idna==3.20 \
  anyio==4.16.0 h11==0.16.0 httpcore2==2.16.2 httpx2==2.16.2 truststore==0.10.5 \
  typer==0.29.2 click==8.5.1 rich==15.0.0 Pygments==2.21.0 markdown-it-py==4.3.0 mdurl==0.1.2 \
  shellingham==1.5.4 annotated-doc==0.0.7 annotated-types==0.8.0 pydantic==2.14.4 \
  pydantic_core==2.50.5 typing-inspection==0.4.5
"$PY" - <<'PY'
import torch, lightning, transformers, accelerate  # noqa: E401
x = torch.randn(3, 4, requires_grad=True)
(x * x).sum().backward()
assert torch.allclose(x.grad, 2 * x)
print("torch", torch.__version__, "lightning", lightning.__version__, "transformers", transformers.__version__)
PY
