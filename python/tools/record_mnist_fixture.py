#!/usr/bin/env python
"""Record fixtures/pytorch_mnist_seed.jsonl: the seed CNN of Perone (2019) through GradTone.

Exactly the loop of /work/shared/reference/pytorch/traj.py for setting sgd_lr0.1_bs10, seed 1
(torch.manual_seed(1); Net(); SGD lr 0.1 momentum 0.5; batch 10; one torch.randperm per epoch;
201 steps), with the hook reading include=["*weight"], group_by="module" after backward. The
values therefore equal trajectories/sgd_lr0.1_bs10_seed1.csv (tests/test_fixtures.py checks it).

    MNIST_DIR=/work/shared/data/mnist-20k ~/.cache/torch-ref/venv/bin/python python/tools/record_mnist_fixture.py
"""

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "python"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reference", default=os.environ.get("GRADTONE_SHARED", "/work/shared") + "/reference/pytorch")
    ap.add_argument("--out", default=os.path.join(REPO, "fixtures", "pytorch_mnist_seed.jsonl"))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--batch", type=int, default=10)
    ap.add_argument("--steps", type=int, default=201)
    a = ap.parse_args()
    os.environ.setdefault("MNIST_DIR", os.path.join(os.path.dirname(os.path.dirname(a.reference)), "data", "mnist-20k"))
    sys.path.insert(0, a.reference)
    import torch
    import torch.nn.functional as F
    from common import Net, batch_indices, load_mnist, make_optimizer

    from gradtone_hook import GradTone

    torch.set_num_threads(2)  # as the reference trajectories were made
    X, y, _ = load_mnist("train")
    torch.manual_seed(a.seed)
    model = Net()
    opt = make_optimizer(model, "sgd", a.lr, 0.5)
    tone = GradTone(model, to=a.out, include=["*weight"], group_by="module", strict=True)
    for idx in batch_indices(X.shape[0], a.batch, a.steps):
        opt.zero_grad()
        loss = F.nll_loss(model(X[idx]), y[idx])
        loss.backward()
        tone.step(loss=loss)
        opt.step()
    tone.close()
    print(f"wrote {a.steps} steps ({os.path.getsize(a.out)} bytes) of {tone.names} to {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
