"""PyTorch side of `npm run bench`: the same model in PyTorch on CPU (the usual way such a model is run),
its FLOPs per image, and this machine's measured fp32 matrix-multiply rate (the floor for any runtime).

  LD_PRELOAD=libtcmalloc_minimal.so.4 /usr/bin/python3 bench/torch_bench.py --onnx models/cxr-unet-r18.onnx --threads 2 --reps 20

Prints one JSON object. Weights come from the ONNX file's initializers (as in the parity test), so both
runtimes run exactly the same network.
"""
import argparse, json, os, statistics, sys, time
import numpy as np
import onnx
from onnx import numpy_helper
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'models', 'training'))
from model import UNetR18, WithSigmoid  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument('--onnx', required=True)
ap.add_argument('--threads', type=int, default=2)
ap.add_argument('--reps', type=int, default=20)
ap.add_argument('--batches', default='1,4')
a = ap.parse_args()
torch.set_num_threads(a.threads)
cfg = json.load(open(os.path.join(HERE, '..', 'models', 'training', 'config.json')))
man = json.load(open(os.path.splitext(a.onnx)[0] + '.json'))
S = man['input']['size']

model = WithSigmoid(UNetR18(tuple(cfg['decoder_channels']))).eval()
want = model.state_dict()
sd = {i.name: torch.from_numpy(numpy_helper.to_array(i).astype(np.float32).copy()) for i in onnx.load(a.onnx).graph.initializer if i.name in want}
model.load_state_dict(sd, strict=False)

# FLOPs (multiply-adds x 2) of convolutions and linear layers, from forward hooks.
flops = [0]
def hook(mod, inp, out):
    kh, kw = mod.kernel_size
    if isinstance(mod, torch.nn.Conv2d):  # each output element: in/groups * kh * kw multiply-adds
        flops[0] += 2 * out.numel() * (mod.in_channels // mod.groups) * kh * kw
    else:  # transposed conv: each input element scatters into out/groups * kh * kw outputs
        flops[0] += 2 * inp[0].numel() * (mod.out_channels // mod.groups) * kh * kw
hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
with torch.no_grad():
    model(torch.zeros(1, 1, S, S))
for h in hs: h.remove()

def timeit(fn, reps):
    fn(); fn()
    ts = []
    for _ in range(reps):
        t = time.perf_counter(); fn(); ts.append((time.perf_counter() - t) * 1000)
    return statistics.median(ts), ts

res = {'size': S, 'threads': a.threads, 'torch': torch.__version__, 'flops_per_image': flops[0], 'batches': {}}
for layout in ['contiguous', 'channels_last']:
    m = model.to(memory_format=torch.channels_last) if layout == 'channels_last' else model
    for b in [int(x) for x in a.batches.split(',')]:
        x = torch.randn(b, 1, S, S)
        if layout == 'channels_last': x = x.to(memory_format=torch.channels_last)
        with torch.no_grad():
            med, ts = timeit(lambda: m(x), a.reps if b == 1 else max(3, a.reps // b))
        res['batches'][f'{layout}_b{b}'] = {'median_ms': med, 'per_image_ms': med / b, 'min_ms': min(ts), 'max_ms': max(ts)}

# Matrix-multiply rate: the best of a few large fp32 GEMMs.
n = 2048
A, B = torch.randn(n, n), torch.randn(n, n)
med, ts = timeit(lambda: torch.mm(A, B), 10)
res['matmul_gflops'] = 2 * n ** 3 / (min(ts) / 1000) / 1e9
res['floor_ms_per_image'] = flops[0] / (res['matmul_gflops'] * 1e9) * 1000
print(json.dumps(res))
