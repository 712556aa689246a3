"""A tiny real PyTorch training loop with the gradtone hook, for `gradtone run` tests.

Usage: train_tiny.py STEPS EXIT_CODE. Prints its own log lines (as any script does), echoes
one line of stdin, then exits with EXIT_CODE. The hook's destination is the default:
$GRADTONE_TO, else stdout.
"""

import sys

import torch
import torch.nn.functional as F

from gradtone_hook import GradTone

steps, code = int(sys.argv[1]), int(sys.argv[2])
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
opt = torch.optim.SGD(model.parameters(), lr=0.1)
tone = GradTone(model)
x = torch.randn(64, 8)
y = (x.sum(1) > 0).long()
print("| training a tiny model |")
for step in range(steps):
    opt.zero_grad()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    tone.step(loss=loss.item())
    opt.step()
    print(f"| step {step:3d} | loss {loss.item():.4f} |", flush=step % 7 == 0)
print("stdin said:", sys.stdin.readline().strip())
print("a line on stderr", file=sys.stderr)
tone.close()
sys.exit(code)
