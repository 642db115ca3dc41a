"""Reference outputs for the ONNX parity test (test/model-parity.test.ts).

  /usr/bin/python3 models/training/torch_reference.py OUT_DIR [--onnx models/cxr-unet-r18.onnx] [--n 4]

Rebuilds the PyTorch model FROM THE ONNX FILE's initializers (names = state_dict keys, fp16 -> fp32), preprocesses a
few real validation images of gb_covid_seg (never external22) exactly like the TypeScript side, and writes
  OUT_DIR/input.f32   float32 [N,1,S,S] (little endian)
  OUT_DIR/output.f32  float32 [N,3,S,S] torch probabilities
  OUT_DIR/index.json  {n, size, ids, onnx_sha256, ...}
"""
import argparse, hashlib, json, os, sys
import numpy as np
import onnx
from onnx import numpy_helper
import torch
from data import usable_records, find_image, load_gray, resize_image, DEFAULT_DATA, HERE, REPO
from model import UNetR18, WithSigmoid

ap = argparse.ArgumentParser()
ap.add_argument('out_dir')
ap.add_argument('--onnx', default=os.path.join(REPO, 'models', 'cxr-unet-r18.onnx'))
ap.add_argument('--data', default=DEFAULT_DATA)
ap.add_argument('--n', type=int, default=4)
a = ap.parse_args()
torch.set_num_threads(1)
cfg = json.load(open(os.path.join(HERE, 'config.json')))
manifest_path = os.path.splitext(a.onnx)[0] + '.json'
man = json.load(open(manifest_path)) if os.path.exists(manifest_path) else None
S = man['input']['size'] if man else cfg['resolution']
norm = man['input']['normalization'] if man else cfg['normalization']

m = onnx.load(a.onnx)
model = WithSigmoid(UNetR18(tuple(cfg['decoder_channels']))).eval()
want = model.state_dict()
sd = {}
for init in m.graph.initializer:
    if init.name in want:
        sd[init.name] = torch.from_numpy(numpy_helper.to_array(init).astype(np.float32).copy()).to(want[init.name].dtype)
missing = [k for k in want if k not in sd]
assert all(k.endswith('num_batches_tracked') for k in missing), f'missing in ONNX: {missing[:5]}'
model.load_state_dict(sd, strict=False)

recs = {r['source'] + '/' + r['id']: r for r in usable_records(a.data)[0]}
splits = json.load(open(os.path.join(HERE, 'splits.json')))
ids = [k for k in splits['val'] if k.startswith('gb_covid_seg/')][:a.n]
x = np.stack([(resize_image(load_gray(find_image(recs[k]['dir'], recs[k]['id'])), S).astype(np.float32) / 255.0
               - norm['mean']) / norm['std'] for k in ids])[:, None].astype(np.float32)
with torch.no_grad():
    y = model(torch.from_numpy(x)).numpy().astype(np.float32)
os.makedirs(a.out_dir, exist_ok=True)
x.astype('<f4').tofile(os.path.join(a.out_dir, 'input.f32'))
y.astype('<f4').tofile(os.path.join(a.out_dir, 'output.f32'))
json.dump({'n': len(ids), 'size': S, 'channels': 3, 'ids': ids, 'input': 'input.f32', 'output': 'output.f32',
           'onnx': os.path.abspath(a.onnx), 'onnx_sha256': hashlib.sha256(open(a.onnx, 'rb').read()).hexdigest(),
           'torch': torch.__version__, 'weights_from_onnx_initializers': len(sd)},
          open(os.path.join(a.out_dir, 'index.json'), 'w'), indent=1)
print(f'wrote {len(ids)} reference tensors to {a.out_dir}')
