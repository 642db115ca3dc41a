"""Adds an out-of-distribution check to cxr-guard: an autoencoder of frontal chest films whose reconstruction error
is high for anything else (the approach torchxrayvision uses), next to the classifier guard.py trained on generated
negatives. The classifier knows the negatives it was shown; the autoencoder knows only what a frontal chest film
looks like, so it also catches kinds of images nobody generated (other body parts, other modalities).

  LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 /usr/bin/python3 models/training/guard_ae.py [--minutes 8] [--trim 0.05] [--export-only]

Reads checkpoints/guard.pt (guard.py's classifier), trains the autoencoder on the same training films (never
external22 or its patients), and exports ONE graph, models/cxr-guard.onnx, with two outputs: `classes` (the
classifier's softmax) and `reconstruction_error` (mean squared error of the 64x64 pooled input, leaving out the
worst-reconstructed --trim share of its pixels). The refusal threshold on the error is the 99.7th percentile of the
training films' errors; validation films and generated negatives of another seed are reported in
models/cxr-guard.json. --export-only re-thresholds and re-exports checkpoints/guard_ae.pt without training.

Why the trim: the plain mean let a small bright patch decide. A white box of 25% x 5% of the image in a corner (a
burned-in label) put 7 of 38 real films over the threshold; a film is a chest film whatever is written on 2% of it,
while an image that is not one is unlike a chest film nearly everywhere.
"""
import argparse, datetime, hashlib, json, math, os, time
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import guard as G

a = G.a  # guard.py parses the shared arguments (--minutes, --threads, --out-dir, --version)
torch.set_num_threads(a.threads)
S, MEAN, STD = G.S, G.MEAN, G.STD


class AE(nn.Module):
    """64x64 pooled input (normalised) -> 4x4x8 code -> 64x64 reconstruction."""

    def __init__(self):
        super().__init__()
        down = lambda i, o: nn.Sequential(nn.Conv2d(i, o, 3, 2, 1), nn.BatchNorm2d(o), nn.ReLU(inplace=True))
        up = lambda i, o: nn.Sequential(nn.Upsample(scale_factor=2, mode='nearest'), nn.Conv2d(i, o, 3, 1, 1),
                                        nn.BatchNorm2d(o), nn.ReLU(inplace=True))
        self.enc = nn.Sequential(down(1, 16), down(16, 32), down(32, 64), down(64, 64), nn.Conv2d(64, 8, 1))
        self.dec = nn.Sequential(nn.Conv2d(8, 64, 1), nn.ReLU(inplace=True), up(64, 64), up(64, 32), up(32, 16),
                                 nn.Upsample(scale_factor=2, mode='nearest'), nn.Conv2d(16, 1, 3, 1, 1))

    def forward(self, x64):
        return self.dec(self.enc(x64))


N64 = (S // 4) ** 2  # pixels of the pooled input (a constant, so the exported graph's TopK has a fixed k)


def recon_error(r, x, trim):
    """Mean squared error per image, leaving out its worst-reconstructed `trim` share of pixels."""
    e = ((r - x) ** 2).flatten(1)
    k = int(round(trim * N64))
    if k == 0:
        return e.mean(1)
    return (e.sum(1) - e.topk(k, dim=1).values.sum(1)) / (N64 - k)


class Combined(nn.Module):
    def __init__(self, guard, ae, trim):
        super().__init__()
        self.guard, self.ae, self.pool, self.trim = guard, ae, nn.AvgPool2d(4), trim

    def forward(self, image):
        x64 = self.pool(image)
        return torch.softmax(self.guard(image), 1), recon_error(self.ae(x64), x64, self.trim)


def batch(rs, img, n):
    x = np.stack([G.augment_pos(rs, img[rs.randint(len(img))]) for _ in range(n)])
    return (torch.from_numpy(x).float().unsqueeze(1) / 255 - MEAN) / STD


@torch.no_grad()
def errors(ae, x_u8):
    out = []
    for i in range(0, len(x_u8), 64):
        x = F.avg_pool2d((torch.from_numpy(x_u8[i:i + 64]).float().unsqueeze(1) / 255 - MEAN) / STD, 4)
        out.append(recon_error(ae(x), x, a.trim).numpy())
    return np.concatenate(out)


if __name__ == '__main__':
    torch.manual_seed(6); rs = np.random.RandomState(6)
    tr, va = G.positives()
    ae = AE()
    opt = torch.optim.AdamW(ae.parameters(), lr=2e-3, weight_decay=1e-5)
    t0 = time.time(); step = 0; budget = 0 if a.export_only else a.minutes * 60
    if a.export_only:
        ae.load_state_dict(torch.load(os.path.join(G.HERE, 'checkpoints', 'guard_ae.pt')))
    while time.time() - t0 < budget:
        for g in opt.param_groups: g['lr'] = 2e-3 * 0.5 * (1 + math.cos(math.pi * min(1, (time.time() - t0) / budget)))
        ae.train(); x = F.avg_pool2d(batch(rs, tr, 48), 4)
        loss = F.mse_loss(ae(x), x)
        opt.zero_grad(); loss.backward(); opt.step(); step += 1
        if step % 100 == 0:
            print(f'step {step} loss {loss.item():.4f} ({time.time() - t0:.0f}s)', flush=True)
    ae.eval()
    e_tr = errors(ae, tr); thr = float(np.quantile(e_tr, 0.997))
    e_va = errors(ae, va)
    vr = np.random.RandomState(99)
    photos = G.load_photos()
    negs = np.stack([G.negative(vr, va, photos) for _ in range(600)])
    e_neg = errors(ae, negs)
    net = G.Guard(); net.load_state_dict(torch.load(os.path.join(G.HERE, 'checkpoints', 'guard.pt'))); net.eval()
    with torch.no_grad():
        p_neg = np.concatenate([torch.softmax(net((torch.from_numpy(negs[i:i + 64]).float().unsqueeze(1) / 255 - MEAN) / STD), 1).numpy() for i in range(0, len(negs), 64)])
        p_va = np.concatenate([torch.softmax(net((torch.from_numpy(va[i:i + 64]).float().unsqueeze(1) / 255 - MEAN) / STD), 1).numpy() for i in range(0, len(va), 64)])
    metrics = {
        'reconstruction_error_threshold (99.7th percentile of training films)': round(thr, 5),
        'val_films': int(len(va)),
        'val_films_over_threshold': int((e_va > thr).sum()),
        'val_films_refused_by_either_check': int(((e_va > thr) | (p_va[:, 2] >= 0.5)).sum()),
        'generated_negatives': int(len(negs)),
        'generated_negatives_over_threshold': int((e_neg > thr).sum()),
        'generated_negatives_accepted_by_both_checks': int(((e_neg <= thr) & (p_neg[:, 2] < 0.5)).sum()),
        'error_leaves_out_worst_pixels': a.trim,
    }
    if not a.export_only:
        metrics.update({'training_steps': step, 'training_minutes': round((time.time() - t0) / 60, 1)})
    print(json.dumps(metrics, indent=1), flush=True)
    if not a.export_only:
        torch.save(ae.state_dict(), os.path.join(G.HERE, 'checkpoints', 'guard_ae.pt'))
    path = os.path.join(a.out_dir, 'cxr-guard.onnx')
    torch.onnx.export(Combined(net, ae, a.trim).eval(), torch.zeros(1, 1, S, S), path, opset_version=13,
                      input_names=['image'], output_names=['classes', 'reconstruction_error'],
                      dynamic_axes={'image': {0: 'N'}, 'classes': {0: 'N'}, 'reconstruction_error': {0: 'N'}})
    mp = os.path.join(a.out_dir, 'cxr-guard.json')
    man = json.load(open(mp))
    man['sha256'] = hashlib.sha256(open(path, 'rb').read()).hexdigest()
    man['output']['reconstruction'] = {'name': 'reconstruction_error', 'description':
                                       'mean squared error of an autoencoder of frontal chest films on the 64x64 pooled input, '
                                       f'leaving out its worst-reconstructed {a.trim:.0%} of pixels'}
    man['thresholds']['reconstruction_error'] = round(thr, 6)
    prev = man['training'].get('autoencoder', {})
    kept = {k: v for k, v in prev.get('validation', {}).items() if k in ('training_steps', 'training_minutes')} if a.export_only else {}
    man['training']['autoencoder'] = {'trained_on': 'the same training films (positives only)', 'validation': {**metrics, **kept},
                                      'date': prev.get('date') if a.export_only else datetime.date.today().isoformat(),
                                      **({'exported': datetime.date.today().isoformat()} if a.export_only else {})}
    json.dump(man, open(mp, 'w'), indent=2)
    print('wrote', path, os.path.getsize(path), 'bytes and', mp)
