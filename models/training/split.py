"""Writes models/training/splits.json: patient-level train/val split of the usable images (model v2 sources).

* gb_covid_seg: the same seeded patient split as model v1 (its validation patients were never trained on, so v2,
  which starts from v1's weights, keeps them held out);
* covidqu_infection: its makers' published train/val split; images that share a `patient_id` (the 90 matched to the
  public COVID-19 collection) go to validation together if any of them is in the published val split. Other covidqu
  images have no patient ids: each is treated as its own patient (a limitation stated in the model card);
* mcsz: seeded patient split (val_fraction_mcsz);
* external22 patients are never in any split (see data.py). v7labs_lungs is not a v2 source (config `sources`).
With --folds k --fold i: fold i of a patient-level k-fold split of every source (cross-validation of the recipe).
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
sources = tuple(cfg['sources'])
recs, excluded = usable_records(a.data, sources)
pats = {}
for r in recs:
    pats.setdefault(r['source'], {}).setdefault(r['patient_id'], []).append(r)
rng = random.Random(cfg['split']['seed'])
val_p = set()
for src in sorted(pats):
    p = sorted(pats[src])
    rng_s = random.Random(f"{cfg['split']['seed']}:{src}") if src != 'gb_covid_seg' else rng
    rng_s.shuffle(p)
    if a.folds > 1:
        val_p |= set(p[a.fold::a.folds])
    elif src == 'covidqu_infection':
        val_p |= {q for q in p if any(r['covidqu_split'] == 'val' for r in pats[src][q])}
    else:
        frac = cfg['split']['val_fraction_gb_patients' if src == 'gb_covid_seg' else 'val_fraction_mcsz']
        val_p |= set(p[:round(len(p) * frac)])
split = {'train': [], 'val': []}
for r in recs:
    split['val' if r['patient_id'] in val_p else 'train'].append(r['source'] + '/' + r['id'])
pid = {r['source'] + '/' + r['id']: r['patient_id'] for r in recs}
out = {
    'description': 'Patient-level split (patient_id; covidqu images without ids count as their own patient). '
                   'Ids are <source>/<id>. external22 patients and duplicates excluded.',
    'seed': cfg['split']['seed'],
    'sources': list(sources),
    **({'cv': {'folds': a.folds, 'fold': a.fold}} if a.folds > 1 else {}),
    'excluded': excluded,
    'counts': {k: {**{s: sum(x.startswith(s + '/') for x in v) for s in sources},
                   'images': len(v), 'patients': len({pid[x] for x in v})}
               for k, v in split.items()},
    'val_patients': sorted(p for p in val_p if not p.startswith('qu:')),
    'train': sorted(split['train']),
    'val': sorted(split['val']),
}
json.dump(out, open(a.out, 'w'), indent=1)
print(json.dumps({k: out[k] for k in ('excluded', 'counts')}, indent=1))
