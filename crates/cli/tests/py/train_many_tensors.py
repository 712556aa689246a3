"""A real PyTorch training loop with many small parameter tensors, heard per tensor: its frames
are far larger than a UDP datagram, for the `gradtone run` transport test.

Usage: train_many_tensors.py TENSORS STEPS. The hook's destination is the default
($GRADTONE_TO, else stdout). Prints the size of the largest frame line on stderr.
"""

import sys

import torch

from gradtone_hook import GradTone, encode_line

tensors, steps = int(sys.argv[1]), int(sys.argv[2])


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.attention = torch.nn.Module()
        self.attention.query_projection = torch.nn.Linear(3, 1, bias=False)

    def forward(self, x):
        return self.attention.query_projection(x)


torch.manual_seed(0)
model = torch.nn.Module()
model.encoder_blocks = torch.nn.ModuleList(Block() for _ in range(tensors))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
tone = GradTone(model, group_by="tensor")
x = torch.randn(16, 3)
largest = 0
for step in range(steps):
    opt.zero_grad()
    # Stacked in one op so that 5,000 tensors cost one backward, not 5,000 small ones.
    w = torch.cat([b.attention.query_projection.weight for b in model.encoder_blocks])
    loss = (x @ w.t()).tanh().pow(2).mean()
    loss.backward()
    frame = tone.step(loss=loss)
    opt.step()
    line = encode_line(frame["step"], frame["values"], frame["losses"], frame.get("rank"), frame.get("world"), frame.get("t"))
    largest = max(largest, len(line.encode("utf-8")))
    print(f"step {step} loss {loss.item():.5f}")
tone.close()
print(f"largest frame: {largest} bytes", file=sys.stderr)
