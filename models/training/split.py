"""Writes models/training/splits.json: patient-level train/val split of the usable images.

Patients are split separately for those with any gb_covid_seg image (opacity labels) and the v7labs-only ones,
so that the validation split holds opacity-labelled images. external22 patients are never in any split.
"""
import argparse, json, os, random
from data import usable_records, DEFAULT_DATA, HERE

ap = argparse.ArgumentParser()
ap.add_argument('--data', default=DEFAULT_DATA)
ap.add_argument('--config', default=os.path.join(HERE, 'config.json'))
ap.add_argument('--out', default=os.path.join(HERE, 'splits.json'))
ap.add_argument('--folds', type=int, default=0, help='k-fold cross-validation: number of patient-level folds')
ap.add_argument('--fold', type=int, default=0, help='with --folds: which fold (0-based) is the validation set')
a = ap.parse_args()
cfg = json.load(open(a.config))
recs, excluded = usable_records(a.data)
pat_src = {}
for r in recs:
    pat_src.setdefault(r['patient_id'], set()).add(r['source'])
gb_p = sorted(p for p, s in pat_src.items() if 'gb_covid_seg' in s)
v7_p = sorted(p for p, s in pat_src.items() if 'gb_covid_seg' not in s)
rng = random.Random(cfg['split']['seed'])
rng.shuffle(gb_p); rng.shuffle(v7_p)
ng = round(len(gb_p) * cfg['split']['val_fraction_gb_patients'])
nv = round(len(v7_p) * cfg['split']['val_fraction_v7_patients'])
if a.folds > 1:
    # Fold i of k: every k-th patient after a seeded shuffle, separately for gb and v7-only patients.
    val_p = set(gb_p[a.fold::a.folds]) | set(v7_p[a.fold::a.folds])
else:
    val_p = set(gb_p[:ng]) | set(v7_p[:nv])
split = {'train': [], 'val': []}
for r in recs:
    split['val' if r['patient_id'] in val_p else 'train'].append(r['source'] + '/' + r['id'])
out = {
    'description': 'Patient-level split (patient_id). Ids are <source>/<id>. external22 patients and gb/v7 duplicates excluded.',
    'seed': cfg['split']['seed'],
    **({'cv': {'folds': a.folds, 'fold': a.fold}} if a.folds > 1 else {}),
    'excluded': excluded,
    'counts': {k: {'images': len(v), 'gb_covid_seg': sum(x.startswith('gb_') for x in v),
                   'v7labs_lungs': sum(x.startswith('v7labs') for x in v),
                   'patients': len({next(r['patient_id'] for r in recs if r['source'] + '/' + r['id'] == x) for x in v})}
               for k, v in split.items()},
    'val_patients': sorted(val_p),
    'train': sorted(split['train']),
    'val': sorted(split['val']),
}
json.dump(out, open(a.out, 'w'), indent=1)
print(json.dumps({k: out[k] for k in ('excluded', 'counts')}, indent=1))
