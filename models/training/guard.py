"""Trains and exports cxr-guard: is this a frontal chest X-ray, and is it mirrored?

  LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 /usr/bin/python3 models/training/guard.py [--minutes 8]

A small CNN that reads the SAME input tensor as the segmentation model ([N,1,256,256], stretched, (v - 0.5) / 0.25),
average-pools it to 64x64 inside the graph and answers three classes (softmax): 0 frontal chest X-ray, 1 frontal chest
X-ray mirrored left-right (heart on the image's left), 2 not a frontal chest X-ray. The TypeScript side refuses class 2
and warns on class 1 (src/core/guard.ts).

Positives: the training split's films of every source (gb_covid_seg, covidqu_infection, mcsz, and v7labs_lungs, whose
lung definition does not matter here), augmented like the segmentation training; never external22 or its patients.
Mirrored: the same films flipped left-right. Negatives are generated (see NEGATIVE_KINDS): noise of many scales,
gradients, flat fields, rendered text pages, shapes, checkerboards/stripes, photographs that python3-skimage ships
(a fixed subset: HELD_OUT_PHOTOS are kept for the tests), and chest films made implausible: rotated 90/180/270 degrees,
inverted, flipped upside down, zoomed-in crops, 2x2 mosaics. Validation: the val split's films (all sources) and
negatives from another seed; the refusal threshold is reported, the model card holds the numbers.
"""
import argparse, glob, json, math, os, random, time, hashlib, datetime
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from data import usable_records, build_cache, load_gray, find_image, resize_image, DEFAULT_DATA, HERE, REPO

ap = argparse.ArgumentParser()
ap.add_argument('--data', default=DEFAULT_DATA)
ap.add_argument('--minutes', type=float, default=8.0, help='training wall time')
ap.add_argument('--threads', type=int, default=2)
ap.add_argument('--out-dir', default=os.path.join(REPO, 'models'))
ap.add_argument('--version', default='1.0.0')
ap.add_argument('--trim', type=float, default=0.05,
                help='guard_ae.py: share of the worst-reconstructed pixels its error leaves out (a burned-in label)')
ap.add_argument('--export-only', action='store_true',
                help='guard_ae.py: no training; threshold and export from checkpoints/guard_ae.pt')
a = ap.parse_args()
torch.set_num_threads(a.threads)
S = 256
MEAN, STD = 0.5, 0.25
CLASSES = ['frontal_cxr', 'frontal_cxr_mirrored', 'not_frontal_cxr']
SKIMAGE_DATA = '/usr/lib/python3/dist-packages/skimage/data'
# Photographs python3-skimage ships that the tests use as unseen non-chest images: never trained on.
HELD_OUT_PHOTOS = {'chelsea', 'coffee', 'rocket', 'motorcycle_left', 'motorcycle_right', 'hubble_deep_field', 'retina'}
FONTS = sorted(glob.glob('/usr/share/fonts/truetype/dejavu/*.ttf'))


class Guard(nn.Module):
    """[N,1,256,256] normalised -> logits [N,3]. Spatial layout is kept (no global pooling) so orientation counts."""

    def __init__(self):
        super().__init__()
        c = lambda i, o: nn.Sequential(nn.Conv2d(i, o, 3, 2, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True),
                                       nn.Conv2d(o, o, 3, 1, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True))
        self.pool = nn.AvgPool2d(4)
        self.features = nn.Sequential(c(1, 16), c(16, 32), c(32, 64), c(64, 96))  # 64 -> 32 -> 16 -> 8 -> 4
        self.drop = nn.Dropout(0.3)
        self.fc = nn.Linear(96 * 4 * 4, 3)

    def forward(self, x):
        return self.fc(self.drop(self.features(self.pool(x)).flatten(1)))


class WithSoftmax(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, image):
        return torch.softmax(self.net(image), 1)


# ---------------- positives ----------------
def positives():
    recs, _ = usable_records(a.data, ('gb_covid_seg', 'covidqu_infection', 'mcsz', 'v7labs_lungs'))
    splits = json.load(open(os.path.join(HERE, 'splits.json')))
    v2 = set(splits['train']) | set(splits['val'])
    by_key = {r['source'] + '/' + r['id']: r for r in recs}
    v2_recs = [by_key[k] for k in splits['train'] + splits['val']]
    cache = os.path.join(HERE, 'checkpoints', 'cache_gb_co_mc_256.npz')
    IMG = build_cache(v2_recs, S, cache)[0]
    is_val = np.array([k in set(splits['val']) for k in splits['train'] + splits['val']])
    # v7labs (not a v2 segmentation source): same patient-level rule, seeded 15% of patients to validation
    v7 = [r for r in recs if r['source'] == 'v7labs_lungs' and r['source'] + '/' + r['id'] not in v2]
    pats = sorted({r['patient_id'] for r in v7}); random.Random(11).shuffle(pats)
    v7_val = set(pats[:round(0.15 * len(pats))])
    v7_img = np.stack([resize_image(load_gray(find_image(r['dir'], r['id'])), S) for r in v7])
    v7_is_val = np.array([r['patient_id'] in v7_val for r in v7])
    img = np.concatenate([IMG, v7_img]); val = np.concatenate([is_val, v7_is_val])
    return img[~val], img[val]


# ---------------- negatives ----------------
def smooth_noise(rs, scale):
    g = rs.rand(max(2, S // scale), max(2, S // scale)).astype(np.float32)
    return np.asarray(Image.fromarray((g * 255).astype(np.uint8)).resize((S, S), Image.BICUBIC), np.float32) / 255


def gradient(rs):
    y, x = np.mgrid[0:S, 0:S].astype(np.float32) / S
    if rs.rand() < 0.5:
        t = rs.rand() * 2 * math.pi
        g = (np.cos(t) * x + np.sin(t) * y)
    else:
        cx, cy = rs.rand(2)
        g = np.sqrt((x - cx) ** 2 + (y - cy) ** 2)
    g = (g - g.min()) / max(1e-6, g.max() - g.min())
    return g * rs.uniform(0.3, 1) + rs.uniform(0, 0.5)


def text_page(rs):
    bg, fg = (255, 0) if rs.rand() < 0.7 else (0, 255)
    im = Image.new('L', (S * 2, S * 2), bg); d = ImageDraw.Draw(im)
    size = rs.randint(10, 40); font = ImageFont.truetype(FONTS[rs.randint(len(FONTS))], size)
    words = ['patient', 'report', 'chest', 'lung', 'the', 'of', 'and', 'result', 'date', 'name', 'x-ray', 'normal',
             'findings', 'impression', 'opacity', 'left', 'right', 'page', '2020', 'COVID-19', 'study', 'AP', 'PA']
    y = rs.randint(0, 30)
    while y < S * 2:
        d.text((rs.randint(0, 40), y), ' '.join(rs.choice(words, rs.randint(2, 12))), fill=fg, font=font)
        y += int(size * rs.uniform(1.2, 2.0))
    return np.asarray(im.resize((S, S), Image.BILINEAR), np.float32) / 255


def shapes(rs):
    im = Image.new('L', (S, S), int(rs.randint(256))); d = ImageDraw.Draw(im)
    for _ in range(rs.randint(1, 12)):
        x0, y0 = rs.randint(0, S, 2); x1, y1 = x0 + rs.randint(10, S), y0 + rs.randint(10, S)
        f = int(rs.randint(256)); k = rs.randint(4)
        if k == 0: d.ellipse([x0, y0, x1, y1], fill=f)
        elif k == 1: d.rectangle([x0, y0, x1, y1], fill=f)
        elif k == 2: d.line([x0, y0, x1, y1], fill=f, width=int(rs.randint(1, 20)))
        else: d.polygon([tuple(rs.randint(0, S, 2)) for _ in range(rs.randint(3, 7))], fill=f)
    return np.asarray(im, np.float32) / 255


def pattern(rs):
    y, x = np.mgrid[0:S, 0:S]
    p = rs.randint(4, 64)
    if rs.rand() < 0.5:
        return (((x // p) + (y // p)) % 2).astype(np.float32) * rs.uniform(0.3, 1)
    t = rs.rand() * math.pi
    return (0.5 + 0.5 * np.sin((np.cos(t) * x + np.sin(t) * y) * 2 * math.pi / p)).astype(np.float32)


def load_photos():
    out = []
    for p in sorted(glob.glob(os.path.join(SKIMAGE_DATA, '*.png')) + glob.glob(os.path.join(SKIMAGE_DATA, '*.jpg'))):
        name = os.path.splitext(os.path.basename(p))[0]
        if name in HELD_OUT_PHOTOS:
            continue
        try:
            im = Image.open(p).convert('L')
        except Exception:
            continue
        if min(im.size) >= 64:
            out.append(np.asarray(im, np.float32) / 255)
    return out


def photo(rs, photos):
    p = photos[rs.randint(len(photos))]
    h, w = p.shape
    ch, cw = int(h * rs.uniform(0.5, 1)), int(w * rs.uniform(0.5, 1))
    y0, x0 = rs.randint(0, h - ch + 1), rs.randint(0, w - cw + 1)
    c = p[y0:y0 + ch, x0:x0 + cw]
    if rs.rand() < 0.5: c = c[:, ::-1]
    if rs.rand() < 0.3: c = 1 - c
    return np.asarray(Image.fromarray((c * 255).astype(np.uint8)).resize((S, S), Image.BILINEAR), np.float32) / 255


def bad_cxr(rs, img):
    x = img[rs.randint(len(img))].astype(np.float32) / 255
    k = rs.randint(7)
    if k == 0: return np.rot90(x, 1 + 2 * rs.randint(2)).copy()   # rotated 90 / 270
    if k == 1: return np.rot90(x, 2).copy()                        # upside down and mirrored
    if k == 2: return 1 - x                                          # inverted (negative)
    if k == 3: return x[::-1].copy()                                 # flipped upside down
    if k == 4:                                                       # zoomed-in crop: a part of a chest
        c = int(S * rs.uniform(0.25, 0.5)); y0, x0 = rs.randint(0, S - c, 2)
        return np.asarray(Image.fromarray((x[y0:y0 + c, x0:x0 + c] * 255).astype(np.uint8)).resize((S, S), Image.BILINEAR), np.float32) / 255
    if k == 5:                                                       # 2x2 mosaic of films
        t = [np.asarray(Image.fromarray(img[rs.randint(len(img))]).resize((S // 2, S // 2), Image.BILINEAR), np.float32) / 255 for _ in range(4)]
        return np.block([[t[0], t[1]], [t[2], t[3]]])
    return 1 - np.rot90(x, 1 + rs.randint(3)).copy()                 # rotated and inverted


def negative(rs, img, photos):
    k = rs.randint(9)
    if k == 0: x = rs.rand(S, S).astype(np.float32) if rs.rand() < 0.5 else np.clip(rs.normal(rs.rand(), rs.uniform(0.05, 0.4), (S, S)), 0, 1).astype(np.float32)
    elif k == 1: x = smooth_noise(rs, int(rs.choice([2, 4, 8, 16, 32, 64])))
    elif k == 2: x = gradient(rs)
    elif k == 3: x = np.full((S, S), rs.rand(), np.float32)
    elif k == 4: x = text_page(rs)
    elif k == 5: x = shapes(rs)
    elif k == 6: x = pattern(rs)
    elif k == 7: x = photo(rs, photos)
    else: x = bad_cxr(rs, img)
    if rs.rand() < 0.3: x = x + rs.normal(0, rs.uniform(0, 0.05), x.shape)
    return (np.clip(x, 0, 1) * 255).astype(np.uint8)


def augment_pos(rs, x):
    """Mild geometric + intensity changes, as films vary (no flips here: the mirrored class is explicit)."""
    im = Image.fromarray(x)
    ang = rs.uniform(-10, 10); sc = rs.uniform(0.9, 1.1); tx, ty = rs.uniform(-0.06, 0.06, 2) * S
    im = im.rotate(ang, Image.BILINEAR, translate=(tx, ty))
    if sc != 1:
        c = int(S / sc); im = im.resize((c, c), Image.BILINEAR)
        canvas = Image.new('L', (S, S), 0); canvas.paste(im, ((S - c) // 2, (S - c) // 2)); im = canvas
    y = np.asarray(im, np.float32) / 255
    y = np.clip(y, 0, 1) ** np.exp(rs.uniform(math.log(0.7), math.log(1.4)))
    m = y.mean(); y = (y - m) * rs.uniform(0.8, 1.2) + m + rs.uniform(-0.1, 0.1)
    if rs.rand() < 0.3: y = y + rs.normal(0, rs.uniform(0, 0.03), y.shape)
    return (np.clip(y, 0, 1) * 255).astype(np.uint8)


def make_batch(rs, img, photos, n):
    xs, ys = [], []
    for _ in range(n):
        u = rs.rand()
        if u < 0.45:
            xs.append(augment_pos(rs, img[rs.randint(len(img))])); ys.append(0)
        elif u < 0.6:
            xs.append(augment_pos(rs, img[rs.randint(len(img))])[:, ::-1].copy()); ys.append(1)
        else:
            xs.append(negative(rs, img, photos)); ys.append(2)
    x = (torch.from_numpy(np.stack(xs)).float().unsqueeze(1) / 255 - MEAN) / STD
    return x, torch.tensor(ys)


if __name__ == '__main__':
    torch.manual_seed(5); rs = np.random.RandomState(5)
    tr, va = positives()
    photos = load_photos()
    print(f'positives train {len(tr)} val {len(va)}; training photos {len(photos)}', flush=True)
    net = Guard()
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    t0 = time.time(); step = 0; budget = a.minutes * 60
    while time.time() - t0 < budget:
        frac = (time.time() - t0) / budget
        for g in opt.param_groups: g['lr'] = 2e-3 * 0.5 * (1 + math.cos(math.pi * frac))
        net.train(); x, y = make_batch(rs, tr, photos, 48)
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad(); loss.backward(); opt.step(); step += 1
        if step % 50 == 0:
            print(f'step {step} loss {loss.item():.4f} ({time.time() - t0:.0f}s)', flush=True)
    net.eval()

    # ---------------- validation: held-out films (val split) and negatives of another seed ----------------
    @torch.no_grad()
    def probs(x_u8):
        out = []
        for i in range(0, len(x_u8), 64):
            x = (torch.from_numpy(x_u8[i:i + 64]).float().unsqueeze(1) / 255 - MEAN) / STD
            out.append(torch.softmax(net(x), 1).numpy())
        return np.concatenate(out)
    vr = np.random.RandomState(99)
    p_pos = probs(va); p_mir = probs(va[:, :, ::-1].copy())
    negs = np.stack([negative(vr, va, photos) for _ in range(600)])
    p_neg = probs(negs)
    metrics = {
        'val_films': int(len(va)),
        'val_films_refused (p_not >= 0.5)': int((p_pos[:, 2] >= 0.5).sum()),
        'val_films_called_mirrored': int((p_pos[:, 1] > p_pos[:, 0]).sum()),
        'val_mirrored_films_detected': int((p_mir[:, 1] > p_mir[:, 0]).sum()),
        'val_mirrored_films_refused': int((p_mir[:, 2] >= 0.5).sum()),
        'val_generated_negatives': int(len(negs)),
        'val_generated_negatives_accepted': int((p_neg[:, 2] < 0.5).sum()),
        'training_steps': step, 'training_minutes': round((time.time() - t0) / 60, 1),
    }
    print(json.dumps(metrics, indent=1), flush=True)

    # ---------------- export ----------------
    os.makedirs(os.path.join(HERE, 'checkpoints'), exist_ok=True)
    torch.save(net.state_dict(), os.path.join(HERE, 'checkpoints', 'guard.pt'))
    os.makedirs(a.out_dir, exist_ok=True)
    path = os.path.join(a.out_dir, 'cxr-guard.onnx')
    torch.onnx.export(WithSoftmax(net).eval(), torch.zeros(1, 1, S, S), path, opset_version=13,
                      input_names=['image'], output_names=['classes'],
                      dynamic_axes={'image': {0: 'N'}, 'classes': {0: 'N'}})
    sha = hashlib.sha256(open(path, 'rb').read()).hexdigest()
    man = {
        'name': 'cxr-guard', 'version': a.version, 'file': 'cxr-guard.onnx', 'sha256': sha,
        'input': {'name': 'image', 'size': S, 'resize': 'stretch', 'normalization': {'mean': MEAN, 'std': STD},
                  'note': 'the same tensor as the segmentation model input'},
        'output': {'name': 'classes', 'classes': CLASSES, 'activation': 'softmax'},
        'thresholds': {'not_frontal_cxr': 0.5},
        'training': {'positives': 'training-split films of gb_covid_seg, covidqu_infection, mcsz, v7labs_lungs '
                                  '(never external22 or its patients); mirrored = the same films flipped',
                     'negatives': 'generated: noise, smooth noise, gradients, flat fields, text pages, shapes, '
                                  'checkerboards/stripes, python3-skimage photographs except ' +
                                  ', '.join(sorted(HELD_OUT_PHOTOS)) + ', chest films rotated/inverted/flipped '
                                  'upside down/cropped/tiled',
                     'validation': metrics, 'date': datetime.date.today().isoformat()},
    }
    json.dump(man, open(os.path.join(a.out_dir, 'cxr-guard.json'), 'w'), indent=2)
    print('wrote', path, os.path.getsize(path), 'bytes')
