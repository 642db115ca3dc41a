"""Summarises models/training/cv/train_log_fold*.csv: per fold, the validation metrics of the epoch that the
training recipe selects (best 'score'), then mean and standard deviation across folds. Writes cv/summary.json."""
import csv, json, os, statistics, sys
HERE = os.path.dirname(os.path.abspath(__file__))
k = int(sys.argv[1]) if len(sys.argv) > 1 else 3
keys = ['val_lung_dice', 'val_lung_dice_gb', 'val_lung_dice_v7', 'val_right_dice', 'val_left_dice', 'val_opacity_dice_pooled', 'val_opacity_dice_mean']
folds = []
for i in range(k):
    path = os.path.join(HERE, 'cv', f'train_log_fold{i}.csv')
    if not os.path.exists(path):
        continue
    rows = list(csv.DictReader(open(path)))
    best = max(rows, key=lambda r: float(r['score']))
    folds.append({'fold': i, 'epochs': len(rows), 'best_epoch': int(best['epoch']), **{m: float(best[m]) for m in keys}})
summary = {'folds': folds, 'mean': {m: statistics.mean(f[m] for f in folds) for m in keys} if folds else {},
           'sd': {m: statistics.stdev(f[m] for f in folds) for m in keys} if len(folds) > 1 else {}}
json.dump(summary, open(os.path.join(HERE, 'cv', 'summary.json'), 'w'), indent=1)
print(json.dumps(summary, indent=1))
