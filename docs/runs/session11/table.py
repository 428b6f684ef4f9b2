# Session 11's table: full pixel MNIST, the rate halved after epoch 12 for every model (session 9's schedule).
# Usage: python3 docs/runs/session11/table.py   (from the repository root)
import csv
def load(p): return {int(r['epoch']): r for r in csv.DictReader(open(p))}
tail = load('docs/curve-mnist-tail300-lstm-halved-after-12.csv')
trunc = load('docs/curve-mnist-lstm-halved-after-12.csv')
full = load('docs/curve-mnist-lstm-full-bptt-halved-after-12.csv')
r = load('docs/curve-mnist-r-lstm-halved-after-12.csv')
cols = [tail, trunc, full, r]
def a(d, e): return 100 * float(d[e]['test_accuracy']) if e in d else None
def m(d, e): return f"{int(d[e]['epoch_seconds'])/60:.1f}" if e in d else '–'
print('| epoch | LSTM on the last 300 pixels only | LSTM, truncated 300 | LSTM, full BPTT | r-LSTM, truncated 300 | min per epoch (tail / truncated / full / r) |')
print('|---|---|---|---|---|---|')
for e in range(1, 21):
    vals = [a(d, e) for d in cols]
    best = max(v for v in vals if v is not None)
    cells = ['–' if v is None else (f'**{v:.1f}**' if v == best else f'{v:.1f}') for v in vals]
    print(f"| {e} | {' | '.join(cells)} | {' / '.join(m(d, e) for d in cols)} |")
