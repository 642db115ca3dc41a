"""Trains cxr-unet-r18 on CPU (or CUDA if present). Resumable: checkpoints/last.pt, best: checkpoints/best.pt.

  LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 /usr/bin/python3 models/training/train.py [--resume]
"""
import argparse, csv, json, math, os, random, time
import numpy as np
import torch
import torch.nn.functional as F
from data import usable_records, build_cache, DEFAULT_DATA, HERE, REPO
from model import UNetR18, load_onnx_weights

ap = argparse.ArgumentParser()
ap.add_argument('--data', default=DEFAULT_DATA)
ap.add_argument('--config', default=os.path.join(HERE, 'config.json'))
ap.add_argument('--splits', default=os.path.join(HERE, 'splits.json'))
ap.add_argument('--ckpt-dir', default=os.path.join(HERE, 'checkpoints'))
ap.add_argument('--log', default=os.path.join(HERE, 'train_log.csv'))
ap.add_argument('--resume', action='store_true', help='continue from ckpt-dir/last.pt')
ap.add_argument('--epochs', type=int, default=None, help='override config epochs')
ap.add_argument('--max-steps', type=int, default=None, help='smoke test: stop each epoch after N steps')
ap.add_argument('--max-minutes', type=float, default=None, help='stop cleanly after this wall time (this process)')
ap.add_argument('--budget-minutes', type=float, default=None,
                help='time-budgeted schedule: the cosine lr decay reaches 0 when EITHER all epochs are done OR the '
                     'cumulative training time (over resumes) reaches this budget; training then stops')
ap.add_argument('--arm', choices=['both', 'gb', 'qu'], default=None,
                help='opacity label sources (ablation): both = gb_covid_seg on the exported opacity channel and '
                     'covidqu on a second, coarse channel (source-conditioned head); gb = gb_covid_seg only; '
                     'qu = covidqu only, on the exported channel. Default: config opacity_sources')
ap.add_argument('--init', default=None, help='ONNX file whose initializers start the model (default: config)')
ap.add_argument('--threads', type=int, default=None)
ap.add_argument('--budget-steps', type=int, default=None,
                help='step-budgeted schedule (ablations: the same number of samples for every arm)')
a = ap.parse_args()

cfg = json.load(open(a.config))
S = cfg['resolution']; MEAN = cfg['normalization']['mean']; STD = cfg['normalization']['std']
EPOCHS = a.epochs or cfg['epochs']
torch.set_num_threads(a.threads or cfg.get('threads', 2))
ARM = a.arm or cfg.get('opacity_sources', 'both')
dev = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
t_start = time.time()

# ---------------- data ----------------
recs, _ = usable_records(a.data, tuple(cfg['sources']))
by_key = {r['source'] + '/' + r['id']: r for r in recs}
splits = json.load(open(a.splits))
train_recs = [by_key[k] for k in splits['train']]
val_recs = [by_key[k] for k in splits['val']]
cache = os.path.join(HERE, 'checkpoints', f'cache_{"_".join(s[:2] for s in cfg["sources"])}_{S}.npz')
print(f'train {len(train_recs)} val {len(val_recs)}; caching at {S}px', flush=True)
all_recs = train_recs + val_recs
IMG, TGT, VALID, IGN = build_cache(all_recs, S, cache)
ntr = len(train_recs)
is_gb = np.array([r['source'] == 'gb_covid_seg' for r in all_recs])
is_qu = np.array([r['source'] == 'covidqu_infection' for r in all_recs])
is_normal = np.array([r.get('covidqu_class') == 'Normal' for r in all_recs])
# Lung-field supervision only from the sources drawn with the visible-field definition of external22 and the
# paper (config lung_sources; see MODEL_CARD.md for the label-agreement measurement behind the choice)
is_lung_src = np.array([r['source'] in cfg.get('lung_sources', cfg['sources']) for r in all_recs])
SRC = np.array([r['source'] for r in all_recs])


def seed_all(s):
    random.seed(s); np.random.seed(s); torch.manual_seed(s)


# ---------------- augmentation (batched, torch) ----------------
def augment(img, tgt, ign, g):
    """img [B,1,S,S] in [0,1]; tgt [B,4,S,S]; ign [B,1,S,S]. Geometric (no flips) + intensity."""
    A = cfg['augment']; B = img.shape[0]
    U = lambda lo, hi: lo + (hi - lo) * torch.rand(B, generator=g)
    ang = U(-A['rotate_deg'], A['rotate_deg']) * math.pi / 180
    sh = U(-A['shear_deg'], A['shear_deg']) * math.pi / 180
    sc = U(*A['scale']); sx = sc * U(0.95, 1.05); sy = sc
    tx = U(-A['translate'], A['translate']) * 2; ty = U(-A['translate'], A['translate']) * 2
    cos, sin = torch.cos(ang), torch.sin(ang)
    # maps output coords -> input coords (inverse of the forward transform)
    theta = torch.zeros(B, 2, 3)
    theta[:, 0, 0] = cos / sx; theta[:, 0, 1] = (-sin + torch.tan(sh)) / sx; theta[:, 0, 2] = tx
    theta[:, 1, 0] = sin / sy; theta[:, 1, 1] = cos / sy; theta[:, 1, 2] = ty
    grid = F.affine_grid(theta, img.shape, align_corners=False)
    img = F.grid_sample(img, grid, mode='bilinear', padding_mode='zeros', align_corners=False)
    lab = torch.cat([tgt, ign], 1)
    lab = F.grid_sample(lab, grid, mode='bilinear', padding_mode='zeros', align_corners=False)
    tgt = (lab[:, :4] >= 0.5).float()
    ign = (lab[:, 4:5] >= 0.5).float()  # padded border stays supervised as background
    # intensity
    gam = torch.exp(U(math.log(A['gamma'][0]), math.log(A['gamma'][1]))).view(B, 1, 1, 1)
    img = img.clamp(0, 1) ** gam
    con = U(*A['contrast']).view(B, 1, 1, 1); bri = U(-A['brightness'], A['brightness']).view(B, 1, 1, 1)
    m = img.mean((2, 3), keepdim=True)
    img = (img - m) * con + m + bri
    for i in range(B):
        if torch.rand(1, generator=g).item() < A['blur_prob']:
            s = float(U(*A['blur_sigma'])[0]); k = 5
            x = torch.arange(k) - k // 2; w = torch.exp(-x.float() ** 2 / (2 * s * s)); w = w / w.sum()
            im = F.pad(img[i:i + 1], (2, 2, 2, 2), mode='replicate')
            im = F.conv2d(im, w.view(1, 1, 1, k)); im = F.conv2d(im, w.view(1, 1, k, 1))
            img[i:i + 1] = im
        if torch.rand(1, generator=g).item() < A['noise_prob']:
            img[i] = img[i] + torch.randn(img[i].shape, generator=g) * float(U(*A['noise_std'])[0])
    return img.clamp(0, 1), tgt, ign


def batch_tensors(idx):
    img = torch.from_numpy(IMG[idx]).float().unsqueeze(1) / 255.0
    tgt = torch.from_numpy(TGT[idx]).float()
    ign = torch.from_numpy(IGN[idx]).float().unsqueeze(1)
    valid = torch.from_numpy(VALID[idx]).float()
    return img, tgt, ign, valid


# ---------------- loss ----------------
def masked_bce_dice(logit, target, weight, eps=1.0):
    """logit/target/weight [B,H,W]; weight 0 excludes a pixel (or an entire image). Soft Dice pooled over batch."""
    if weight.sum() < 1:
        return logit.sum() * 0
    bce = (F.binary_cross_entropy_with_logits(logit, target, reduction='none') * weight).sum() / weight.sum()
    p = torch.sigmoid(logit) * weight; t = target * weight
    dice = 1 - (2 * (p * t).sum() + eps) / (p.sum() + t.sum() + eps)
    return bce + dice


def compute_loss(logits, tgt, ign, valid, idx):
    """Channels: 0 lung_right, 1 lung_left, 2 opacity (exported; clean gb_covid_seg-style labels), 3 coarse opacity
    (covidqu-style labels; training only). Lungs: every source (all draw visible lung fields). Opacity by --arm."""
    keep = 1 - ign[:, 0]
    w = lambda m: torch.from_numpy(m[idx].astype(np.float32)).to(logits.device).view(-1, 1, 1)
    gb, qu, nm, ls = w(is_gb), w(is_qu), w(is_qu & is_normal), w(is_lung_src)
    l_r = masked_bce_dice(logits[:, 0], tgt[:, 0], keep * ls * valid[:, 0].view(-1, 1, 1))
    l_l = masked_bce_dice(logits[:, 1], tgt[:, 1], keep * ls * valid[:, 1].view(-1, 1, 1))
    vo = valid[:, 2].view(-1, 1, 1)
    if ARM == 'both':
        clean_w = keep * vo * (gb + cfg['normal_clean_opacity_weight'] * nm)
        coarse_w = keep * vo * qu
    elif ARM == 'gb':
        clean_w, coarse_w = keep * vo * gb, None
    else:
        clean_w, coarse_w = keep * vo * qu, None
    l_o = masked_bce_dice(logits[:, 2], tgt[:, 2], clean_w)
    l_c = masked_bce_dice(logits[:, 3], tgt[:, 2], coarse_w) if coarse_w is not None else logits.sum() * 0
    total = l_r + l_l + cfg['opacity_loss_weight'] * l_o + cfg['coarse_opacity_loss_weight'] * l_c
    return total, dict(l_right=l_r.item(), l_left=l_l.item(), l_opac=l_o.item(), l_coarse=l_c.item())


# ---------------- validation ----------------
def dice(a, b):
    s = a.sum() + b.sum()
    return 1.0 if s == 0 else 2.0 * (a & b).sum() / s


@torch.no_grad()
def predict(model, idx, bs=8):
    model.eval(); out = []
    for i in range(0, len(idx), bs):
        x = (torch.from_numpy(IMG[idx[i:i + bs]]).float().unsqueeze(1) / 255.0 - MEAN) / STD
        x = x.to(dev).contiguous(memory_format=torch.channels_last)
        out.append(torch.sigmoid(model(x)).float().cpu().numpy())
    return np.concatenate(out)


VAL_IDX = None


def val_indices():
    """Validation images: all of gb_covid_seg and mcsz val, a fixed seeded subset of covidqu val (speed)."""
    global VAL_IDX
    if VAL_IDX is None:
        idx = np.arange(ntr, len(all_recs))
        qu = idx[is_qu[idx]]
        rs = np.random.RandomState(7)
        qsub = np.sort(rs.choice(qu, size=min(len(qu), cfg.get('val_subsample_covidqu', len(qu))), replace=False))
        VAL_IDX = np.concatenate([idx[~is_qu[idx]], qsub])
    return VAL_IDX


def evaluate(model, opacity_thresholds=(0.5,)):
    idx = val_indices()
    P = predict(model, idx)
    lung = {s: [] for s in ('gb_covid_seg', 'covidqu_infection', 'mcsz')}
    lr, ll = [], []
    acc = {'clean_gb': [0, 0], 'coarse_qu': [0, 0], 'clean_qu': [0, 0]}
    normal_fp = []
    for j, i in enumerate(idx):
        pr, pl = P[j, 0] >= 0.5, P[j, 1] >= 0.5
        pu = pr | pl
        lung[SRC[i]].append(dice(pu, TGT[i, 3] > 0))
        if is_gb[i]:
            if VALID[i, 0]: lr.append(dice(pr, TGT[i, 0] > 0))
            if VALID[i, 1]: ll.append(dice(pl, TGT[i, 1] > 0))
        if VALID[i, 2] == 0:
            continue
        to = TGT[i, 2] > 0
        for name, ch in (('clean_gb', 2), ('coarse_qu', 3), ('clean_qu', 2)):
            if (name.endswith('gb') and not is_gb[i]) or (name.endswith('qu') and not is_qu[i]) or ch >= P.shape[1]:
                continue
            po = (P[j, ch] >= 0.5) & pu
            acc[name][0] += (po & to).sum(); acc[name][1] += po.sum() + to.sum()
        if is_qu[i] and is_normal[i]:
            normal_fp.append((((P[j, 2] >= 0.5) & pu).sum()) / max(1, pu.sum()))
    m = lambda v: float(np.mean(v)) if v else float('nan')
    pooled = lambda k: 2.0 * acc[k][0] / acc[k][1] if acc[k][1] else float('nan')
    res = dict(val_lung_dice_gb=m(lung['gb_covid_seg']), val_lung_dice_qu=m(lung['covidqu_infection']),
               val_lung_dice_mcsz=m(lung['mcsz']), val_right_dice=m(lr), val_left_dice=m(ll),
               val_opacity_dice_pooled=pooled('clean_gb'), val_opacity_dice_qu_clean_head=pooled('clean_qu'),
               val_opacity_dice_qu_coarse_head=pooled('coarse_qu'), val_normal_opacity_pct=100 * m(normal_fp))
    res['score'] = 0.5 * (res['val_lung_dice_qu'] + res['val_opacity_dice_pooled'])
    return res, None


if __name__ == '__main__':
    seed_all(cfg['seed'])
    model = UNetR18(tuple(cfg['decoder_channels']), out_channels=cfg.get('head_channels', 3))
    init = a.init or (os.path.join(REPO, cfg['init_from_onnx'].split(' ')[0]) if cfg.get('init_from_onnx') else None)
    if init and not a.resume:
        print('initial weights from', init, load_onnx_weights(model, init), flush=True)
    model = model.to(dev).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg['lr'], weight_decay=cfg['weight_decay'])
    steps_per_epoch = cfg['samples_per_epoch'] // cfg['batch_size']
    total_steps = EPOCHS * steps_per_epoch; warm = int(cfg['warmup_epochs'] * steps_per_epoch)

    train_seconds = 0.0  # cumulative over resumes

    def progress(step):
        p = (step - warm) / max(1, total_steps - warm)
        if a.budget_minutes:
            p = max(p, train_seconds / (a.budget_minutes * 60))
        if a.budget_steps:
            p = max(p, (step - warm) / max(1, a.budget_steps - warm))
        return min(1.0, max(0.0, p))

    def lr_at(step):
        if step < warm:
            return cfg['lr'] * (step + 1) / warm
        return cfg['lr'] * 0.5 * (1 + math.cos(math.pi * progress(step)))

    start_epoch, best, step = 0, -1.0, 0
    os.makedirs(a.ckpt_dir, exist_ok=True)
    last_p = os.path.join(a.ckpt_dir, 'last.pt'); best_p = os.path.join(a.ckpt_dir, 'best.pt')
    if a.resume and os.path.exists(last_p):
        ck = torch.load(last_p, map_location='cpu')
        model.load_state_dict(ck['model']); opt.load_state_dict(ck['opt'])
        start_epoch, best, step = ck['epoch'] + 1, ck['best'], ck['step']
        train_seconds = ck.get('train_seconds', 0.0)
        random.setstate(ck['py_rng']); np.random.set_state(ck['np_rng']); torch.set_rng_state(ck['torch_rng'])
        print(f'resumed from epoch {ck["epoch"]} (best score {best:.4f})', flush=True)
    # log: keep rows of completed epochs only
    fields = ['epoch', 'lr', 'train_loss', 'l_right', 'l_left', 'l_opac', 'l_coarse', 'val_lung_dice_gb',
              'val_lung_dice_qu', 'val_lung_dice_mcsz', 'val_right_dice', 'val_left_dice', 'val_opacity_dice_pooled',
              'val_opacity_dice_qu_clean_head', 'val_opacity_dice_qu_coarse_head', 'val_normal_opacity_pct',
              'score', 'is_best', 'epoch_seconds', 'train_minutes']
    rows = []
    if start_epoch > 0 and os.path.exists(a.log):
        rows = [r for r in csv.DictReader(open(a.log)) if int(r['epoch']) < start_epoch]
    with open(a.log, 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=fields); w.writeheader(); w.writerows(rows)

    # sampling weights per source (gb_covid_seg and mcsz oversampled: few, precise labels)
    wts = np.array([cfg['source_weights'][s_] for s_ in SRC[:ntr]]); wts = wts / wts.sum()
    for epoch in range(start_epoch, EPOCHS):
        t0 = time.time(); model.train()
        rs = np.random.RandomState(cfg['seed'] * 1000 + epoch)
        g = torch.Generator().manual_seed(cfg['seed'] * 1000 + epoch)
        order = rs.choice(ntr, size=steps_per_epoch * cfg['batch_size'], replace=True, p=wts)
        agg = {}; n = 0
        for s in range(steps_per_epoch):
            if a.max_steps and s >= a.max_steps:
                break
            if step >= warm and progress(step) >= 1.0:
                break
            ts = time.time()
            idx = order[s * cfg['batch_size']:(s + 1) * cfg['batch_size']]
            img, tgt, ign, valid = batch_tensors(idx)
            img, tgt, ign = augment(img, tgt, ign, g)
            x = ((img - MEAN) / STD).to(dev).contiguous(memory_format=torch.channels_last)
            for pg in opt.param_groups:
                pg['lr'] = lr_at(step)
            logits = model(x)
            loss, parts = compute_loss(logits.float(), tgt.to(dev), ign.to(dev), valid.to(dev), idx)
            opt.zero_grad(set_to_none=True); loss.backward(); opt.step(); step += 1
            train_seconds += time.time() - ts
            parts['train_loss'] = loss.item()
            for k, v in parts.items():
                agg[k] = agg.get(k, 0) + v
            n += 1
            if s % 10 == 0:
                print(f'  ep {epoch} step {s}/{steps_per_epoch} loss {loss.item():.4f} ({time.time() - t0:.0f}s)', flush=True)
        res, _ = evaluate(model)
        is_best = res['score'] > best
        if is_best:
            best = res['score']
        row = dict(epoch=epoch, lr=f'{lr_at(step - 1):.6f}', **{k: f'{v / max(n, 1):.4f}' for k, v in agg.items()},
                   **{k: f'{v:.4f}' for k, v in res.items()}, is_best=int(is_best), epoch_seconds=f'{time.time() - t0:.1f}',
                   train_minutes=f'{train_seconds / 60:.1f}')
        with open(a.log, 'a', newline='') as f:
            csv.DictWriter(f, fieldnames=fields).writerow(row)
        state = dict(model=model.state_dict(), opt=opt.state_dict(), epoch=epoch, best=best, step=step,
                     py_rng=random.getstate(), np_rng=np.random.get_state(), torch_rng=torch.get_rng_state(),
                     config=cfg, metrics=res, train_seconds=train_seconds)
        torch.save(state, last_p + '.tmp'); os.replace(last_p + '.tmp', last_p)
        if is_best:
            torch.save(dict(model=model.state_dict(), epoch=epoch, metrics=res, config=cfg), best_p + '.tmp')
            os.replace(best_p + '.tmp', best_p)
        print(f'epoch {epoch} {row}', flush=True)
        if n == 0 or progress(step) >= 1.0:
            print('schedule finished (epochs or time budget)', flush=True)
            break
        if a.max_minutes and (time.time() - t_start) / 60 > a.max_minutes:
            print('max minutes reached; stopping (resume with --resume)', flush=True)
            break
