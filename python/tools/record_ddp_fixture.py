#!/usr/bin/env python
"""Record a 4-rank torch.distributed (gloo, 127.0.0.1) run through GradTone: fixtures/pytorch_ddp_4ranks.jsonl.

Every rank trains the same small MLP (fc1 16->32, fc2 32->32, fc3 32->4, tanh) on its own random
data (a fixed random linear teacher plus noise; rank r draws from generator seed 1000+r) with SGD
lr 0.05, batch 16, and sends its frames to one UDP collector in this process
(to="udp://127.0.0.1:PORT", group_by="module", weights and biases). The collector writes the
datagrams in the order they arrived, so the lines of all ranks are interleaved as a listener
would see them. Rank 3 (--slow-rank) sleeps --slow-ms after backward, before tone.step().

--mode ddp (default): DistributedDataParallel, gradients all-reduced every step. The norms are
  the same on every rank (they are of the averaged gradient); the losses are each rank's own.
  Ranks cannot drift more than one step apart: the slow rank's line of step k arrives after the
  others' line k, and the others then wait for it in the all-reduce of step k+1.
--mode localsgd: no per-step gradient all-reduce; the parameters are averaged (all_reduce) every
  --sync-every steps. Norms differ per rank and the slow rank falls up to --sync-every steps
  behind between synchronisations.

    ~/.cache/torch-ref/venv/bin/python python/tools/record_ddp_fixture.py [--mode localsgd --out ...]
"""

import argparse
import os
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "python"))


def worker(rank, world, master_port, udp_port, a):
    import torch
    import torch.distributed as dist
    import torch.nn as nn

    sys.path.insert(0, os.path.join(REPO, "python"))
    from gradtone_hook import GradTone

    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(master_port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(16, 32)
            self.fc2 = nn.Linear(32, 32)
            self.fc3 = nn.Linear(32, 4)

        def forward(self, x):
            return self.fc3(torch.tanh(self.fc2(torch.tanh(self.fc1(x)))))

    torch.manual_seed(0)  # same initial weights and teacher on every rank
    model = MLP()
    teacher = torch.randn(16, 4)
    net = nn.parallel.DistributedDataParallel(model) if a.mode == "ddp" else model
    opt = torch.optim.SGD(net.parameters(), lr=a.lr)
    g = torch.Generator().manual_seed(1000 + rank)
    tone = GradTone(net, to=f"udp://127.0.0.1:{udp_port}", group_by="module", strict=True)
    dist.barrier()
    for step in range(a.steps):
        x = torch.randn(a.batch, 16, generator=g)
        target = x @ teacher + 0.1 * torch.randn(a.batch, 4, generator=g)
        opt.zero_grad()
        loss = nn.functional.mse_loss(net(x), target)
        loss.backward()
        if rank == a.slow_rank:
            time.sleep(a.slow_ms / 1000.0)
        tone.step(loss=loss)
        opt.step()
        if a.mode == "localsgd" and (step + 1) % a.sync_every == 0:
            with torch.no_grad():
                for p in model.parameters():
                    dist.all_reduce(p.data)
                    p.data /= world
    tone.close()
    dist.barrier()
    dist.destroy_process_group()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=["ddp", "localsgd"], default="ddp")
    ap.add_argument("--world", type=int, default=4)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--slow-rank", type=int, default=3)
    ap.add_argument("--slow-ms", type=float, default=30.0)
    ap.add_argument("--sync-every", type=int, default=10)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    out = a.out or os.path.join(REPO, "fixtures", f"pytorch_{a.mode}_{a.world}ranks.jsonl")
    import torch.multiprocessing as mp

    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)  # no drops while we write
    srv.bind(("127.0.0.1", 0))
    srv.settimeout(0.2)
    ctx = mp.start_processes(
        worker, args=(a.world, free_port(), srv.getsockname()[1], a), nprocs=a.world, join=False, start_method="spawn"
    )
    got = []
    done = False
    while True:
        try:
            got.append(srv.recvfrom(65536)[0].decode("utf-8"))
            continue
        except socket.timeout:
            if done:
                break  # the workers have exited and nothing arrived for 0.2 s
        done = ctx.join(timeout=0.01)
    srv.close()
    expected = a.world * a.steps
    if len(got) != expected:
        sys.exit(f"received {len(got)} frames, expected {expected}: not writing {out}")
    with open(out, "w", encoding="utf-8", newline="\n") as f:
        f.writelines(got)
    print(f"wrote {len(got)} lines ({os.path.getsize(out)} bytes) to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
