"""Exports a checkpoint to models/cxr-unet-r18.onnx + models/cxr-unet-r18.json.

  /usr/bin/python3 models/training/export.py [--ckpt models/training/checkpoints/best.pt]

* weights are rounded to float16; the .onnx stores float16 initializers (named like the PyTorch state_dict keys)
  each followed by a Cast to float32, so compute stays fp32 in onnxruntime;
* the torch model evaluated here uses the SAME fp16-rounded weights;
* opset 13, do_constant_folding=False, TrainingMode.PRESERVE on an eval() model (no Conv+BN fusion, names kept),
  sigmoid inside the graph, dynamic batch axis;
* the opacity threshold is chosen on the VALIDATION split only (never on external22).
"""
import argparse, collections, csv, datetime, hashlib, json, os, sys
import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto
import torch
from data import usable_records, build_cache, DEFAULT_DATA, HERE, REPO
from model import UNetR18, WithSigmoid

ap = argparse.ArgumentParser()
ap.add_argument('--ckpt', default=os.path.join(HERE, 'checkpoints', 'best.pt'))
ap.add_argument('--data', default=DEFAULT_DATA)
ap.add_argument('--config', default=os.path.join(HERE, 'config.json'))
ap.add_argument('--splits', default=os.path.join(HERE, 'splits.json'))
ap.add_argument('--log', default=os.path.join(HERE, 'train_log.csv'))
ap.add_argument('--out-dir', default=os.path.join(REPO, 'models'))
ap.add_argument('--name', default='cxr-unet-r18')
ap.add_argument('--version', default='2.0.0')
ap.add_argument('--guard', default='cxr-guard.json', help='guard manifest the model manifest names ("" for none)')
a = ap.parse_args()
torch.set_num_threads(1)
cfg = json.load(open(a.config))
S = cfg['resolution']; MEAN = cfg['normalization']['mean']; STD = cfg['normalization']['std']

# ---------------- model with fp16-rounded weights ----------------
ck = torch.load(a.ckpt, map_location='cpu')
net = UNetR18(tuple(cfg['decoder_channels']))
sd = {k: (v.half().float() if v.is_floating_point() else v) for k, v in ck['model'].items()}
# the training head may carry a 4th channel (coarse covidqu-style opacity, training only): export the first three
sd = {k: (v[:3] if k.startswith('head.') else v) for k, v in sd.items()}
net.load_state_dict(sd)
model = WithSigmoid(net).eval()

onnx_path = os.path.join(a.out_dir, a.name + '.onnx')
# keep one initializer per parameter, named after its state_dict key: turn off the exporter's de-duplication of
# initializers with identical values (it would drop e.g. untouched BatchNorm weights of equal value)
torch._C._jit_pass_onnx_deduplicate_initializers = lambda graph, params, training: params
tmp_path = onnx_path + '.fp32.tmp'
torch.onnx.export(model, torch.zeros(1, 1, S, S), tmp_path, opset_version=13, do_constant_folding=False,
                  training=torch.onnx.TrainingMode.PRESERVE, input_names=['image'], output_names=['probabilities'],
                  dynamic_axes={'image': {0: 'N'}, 'probabilities': {0: 'N'}})
m = onnx.load(tmp_path); os.remove(tmp_path)
g = m.graph
state_keys = set(model.state_dict().keys())
casts, renamed = [], {}
for init in g.initializer:
    if init.data_type != TensorProto.FLOAT:
        continue
    arr = numpy_helper.to_array(init)
    if arr.size < 2:  # keep scalars fp32
        continue
    name = init.name
    init.CopyFrom(numpy_helper.from_array(arr.astype(np.float16), name))
    renamed[name] = name + '__fp32'
    casts.append(helper.make_node('Cast', [name], [name + '__fp32'], name='Cast_' + name, to=TensorProto.FLOAT))
for node in g.node:
    for i, x in enumerate(node.input):
        if x in renamed:
            node.input[i] = renamed[x]
nodes = casts + list(g.node)
del g.node[:]
g.node.extend(nodes)
unnamed = [n for n in renamed if n not in state_keys]
assert not unnamed, f'initializers not named after state_dict keys: {unnamed[:5]}'
absent = [k for k in state_keys if not k.endswith('num_batches_tracked') and k not in {i.name for i in g.initializer}]
assert not absent, f'state_dict keys missing from the ONNX initializers: {absent[:5]}'
m.doc_string = f'{a.name} {a.version}: U-Net/ResNet18, sigmoid(lung_right, lung_left, opacity); fp16 weights + Cast'
onnx.checker.check_model(m)
onnx.save(m, onnx_path)
sha = hashlib.sha256(open(onnx_path, 'rb').read()).hexdigest()
size_mb = os.path.getsize(onnx_path) / 1e6
print(f'wrote {onnx_path} ({size_mb:.1f} MB), {len(casts)} fp16 initializers, sha256 {sha}')

# ---------------- validation metrics + opacity threshold (val split only) ----------------
recs, excluded = usable_records(a.data, tuple(cfg['sources']))
by_key = {r['source'] + '/' + r['id']: r for r in recs}
splits = json.load(open(a.splits))
val = [by_key[k] for k in splits['val']]
tr = [by_key[k] for k in splits['train']]
IMG, TGT, VALID, IGN = build_cache(tr + val, S, os.path.join(HERE, 'checkpoints', f'cache_{"_".join(s[:2] for s in cfg["sources"])}_{S}.npz'))
IMG, TGT, VALID, IGN = IMG[len(tr):], TGT[len(tr):], VALID[len(tr):], IGN[len(tr):]
with torch.no_grad():
    P = np.concatenate([model((torch.from_numpy(IMG[i:i + 8]).float().unsqueeze(1) / 255.0 - MEAN) / STD).numpy()
                        for i in range(0, len(val), 8)])


def dice(x, y):
    s = x.sum() + y.sum()
    return 1.0 if s == 0 else 2.0 * (x & y).sum() / s


gbi = [i for i, r in enumerate(val) if r['source'] == 'gb_covid_seg']
qui = [i for i, r in enumerate(val) if r['source'] == 'covidqu_infection']
mci = [i for i, r in enumerate(val) if r['source'] == 'mcsz']
lung = lambda i: (P[i, 0] >= 0.5) | (P[i, 1] >= 0.5)
keep = lambda i: IGN[i] == 0
lu = {i: dice(lung(i) & keep(i), (TGT[i, 3] > 0) & keep(i)) for i in range(len(val))}
sweep = {}
for t in [0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6]:
    inter = tot = 0; per = []
    for i in gbi:
        po = (P[i, 2] >= t) & lung(i); to = TGT[i, 2] > 0
        inter += (po & to).sum(); tot += po.sum() + to.sum(); per.append(dice(po, to))
    sweep[t] = (2.0 * inter / tot, float(np.mean(per)))
# small validation set: leave the default 0.5 unless another threshold is clearly better (>= 0.01 pooled Dice)
t_cand = max(sweep, key=lambda t: sweep[t][0])
t_best = t_cand if sweep[t_cand][0] >= sweep[0.5][0] + 0.01 else 0.5
metrics = {
    'lung_dice_union_covidqu_val (visible lung fields)': round(float(np.mean([lu[i] for i in qui])), 4),
    'lung_dice_union_mcsz_val (visible lung fields)': round(float(np.mean([lu[i] for i in mci])), 4),
    'lung_dice_union_gb_val (gb definition: not supervised in v2)': round(float(np.mean([lu[i] for i in gbi])), 4),
    'lung_right_dice_covidqu_val': round(float(np.mean([dice(P[i, 0] >= 0.5, TGT[i, 0] > 0) for i in qui])), 4),
    'lung_left_dice_covidqu_val': round(float(np.mean([dice(P[i, 1] >= 0.5, TGT[i, 1] > 0) for i in qui])), 4),
    'lung_right_dice_gb_val': round(float(np.mean([dice(P[i, 0] >= 0.5, TGT[i, 0] > 0) for i in gbi if VALID[i, 0]])), 4),
    'lung_left_dice_gb_val': round(float(np.mean([dice(P[i, 1] >= 0.5, TGT[i, 1] > 0) for i in gbi if VALID[i, 1]])), 4),
    'opacity_dice_pooled_gb_val@0.5': round(float(sweep[0.5][0]), 4),
    'opacity_dice_mean_gb_val@0.5': round(float(sweep[0.5][1]), 4),
    f'opacity_dice_pooled_gb_val@{t_best}': round(float(sweep[t_best][0]), 4),
    'note': 'thresholded probabilities at 256x256; opacity restricted to predicted lungs; ignore pixels excluded',
}
print('opacity threshold sweep (val, pooled/mean Dice):', {t: tuple(round(float(v), 4) for v in x) for t, x in sweep.items()})
print(json.dumps(metrics, indent=1))

# ---------------- manifest ----------------
used = tr + val
lic = collections.defaultdict(collections.Counter)
for r in used:
    lic[r['source']][r['licence'] or '(blank in manifest)'] += 1
nc = sum(n for s in lic.values() for l, n in s.items() if 'NC' in l.upper())
log_rows = list(csv.DictReader(open(a.log))) if os.path.exists(a.log) else []
manifest = {
    'name': a.name, 'version': a.version, 'file': os.path.basename(onnx_path), 'sha256': sha,
    'input': {'name': 'image', 'size': S, 'resize': 'stretch', 'normalization': {'mean': MEAN, 'std': STD}},
    'output': {'name': 'probabilities', 'channels': ['lung_right', 'lung_left', 'opacity'], 'activation': 'sigmoid'},
    'thresholds': {'lung_right': 0.5, 'lung_left': 0.5, 'opacity': float(t_best)},
    **({'guard': a.guard} if a.guard else {}),
    'training': {
        'architecture': 'U-Net, torchvision ResNet18 encoder (1-channel conv1, no pretrained weights: v1 trained from '
                        f'random init, v2 fine-tuned from v1), decoder {cfg["decoder_channels"]}, nearest upsampling; '
                        'weights stored fp16 + Cast to fp32; training head has a 4th (coarse covidqu opacity) channel, '
                        'not exported',
        'framework': f'PyTorch {torch.__version__}, ONNX opset 13',
        'datasets': {
            s: {'images_used': sum(r['source'] == s for r in used),
                'train': sum(r['source'] == s for r in tr), 'val': sum(r['source'] == s for r in val),
                'patients': len({r['patient_id'] for r in used if r['source'] == s}),
                'labels_used': {'gb_covid_seg': 'opacity (exported channel); lungs not supervised (other definition)',
                                'covidqu_infection': 'lung_right, lung_left; opacity on the coarse training channel; '
                                                     'Normal images also as true negatives of the exported channel',
                                'mcsz': 'lung_right, lung_left'}[s],
                'licences': dict(lic[s])}
            for s in cfg['sources']},
        'initialised_from': cfg.get('init_from_onnx'),
        'non_commercial_licence_images': nc,
        'licence_note': 'per-image licences from the manifests; images with NC licences restrict commercial use of '
                        'the data (see models/MODEL_CARD.md); blank = no per-image licence given in the manifest',
        'excluded': {**excluded,
                     'external22': 'all 22 images: external test set, never trained or tuned on',
                     'covid_rural_ar': 'no images (masks only): not usable for training',
                     'reason': 'patients of external22 removed; covidqu images flagged as possible duplicates of '
                               'gb_covid_seg / v7labs_lungs radiographs dropped; v7labs_lungs not a v2 source'},
        'split_file': 'models/training/splits.json (patient-level, seed %d)' % cfg['split']['seed'],
        'config': 'models/training/config.json',
        'seed': cfg['seed'],
        'epochs_planned': cfg['epochs'],
        'epochs_trained': len(log_rows),
        'best_epoch': int(ck['epoch']),
        'val_metrics': metrics,
        'opacity_threshold_selected_on': 'validation split (gb_covid_seg val images), pooled Dice; 0.5 kept unless '
                                     'another threshold in 0.30-0.60 is better by >= 0.01',
    'opacity_threshold_sweep_val_pooled_dice': {str(t): round(float(v[0]), 4) for t, v in sweep.items()},
        'date': datetime.date.today().isoformat(),
    },
}
mp = os.path.join(a.out_dir, a.name + '.json')
json.dump(manifest, open(mp, 'w'), indent=2)
open(mp, 'a').write('\n')
print('wrote', mp)
