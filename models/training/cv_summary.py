"""Summarises models/training/cv/train_log_fold*.csv: per fold, the validation metrics of the epoch that the
training recipe selects (best 'score'), then mean and standard deviation across folds. Writes cv/summary.json."""
import csv, json, os, statistics, sys
HERE = os.path.dirname(os.path.abspath(__file__))
k = int(sys.argv[1]) if len(sys.argv) > 1 else 3
# every validation metric the training log has (v1 and v2 logs name them differently)
keys = None
folds = []
for i in range(k):
    path = os.path.join(HERE, 'cv', f'train_log_fold{i}.csv')
    if not os.path.exists(path):
        continue
    rows = list(csv.DictReader(open(path)))
    keys = keys or [c for c in rows[0] if c.startswith('val_')]
    best = max(rows, key=lambda r: float(r['score']))
    folds.append({'fold': i, 'epochs': len(rows), 'best_epoch': int(best['epoch']), **{m: float(best[m]) for m in keys}})
keys = keys or []
summary = {'folds': folds, 'mean': {m: statistics.mean(f[m] for f in folds) for m in keys} if folds else {},
           'sd': {m: statistics.stdev(f[m] for f in folds) for m in keys} if len(folds) > 1 else {}}
json.dump(summary, open(os.path.join(HERE, 'cv', 'summary.json'), 'w'), indent=1)
print(json.dumps(summary, indent=1))
