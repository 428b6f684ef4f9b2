# Session 9's table: pixel MNIST epochs 12.., constant rate vs rate halved after epoch 12, r-LSTM and LSTM.
import csv
D='/work/runs/s9/mn/'
def load(n): return {int(r['epoch']): r for r in csv.DictReader(open(D+f'curve-mnist-{n}.csv'))}
rp, lp, rh, lh = load('bfloat16'), load('lstm-bfloat16'), load('bfloat16-halving-12'), load('lstm-bfloat16-halving-12')
def a(d, e): return f"{100*float(d[e]['test_accuracy']):.1f}" if e in d else '–'
def m(d, e): return f"{int(d[e]['epoch_seconds'])/60:.1f}" if e in d else '–'
print('| epoch | LSTM, rate 1e-3 | r-LSTM, rate 1e-3 | LSTM, rate halved after 12 | r-LSTM, rate halved after 12 | min per epoch (halved: LSTM / r) |')
print('|---|---|---|---|---|---|')
for e in range(12, max(rh)+1):
    def b(x, y): return (f'**{x}**', y) if x != '–' and y != '–' and float(x) > float(y) else ((x, f'**{y}**') if x != '–' and y != '–' and float(y) > float(x) else (x, y))
    r1, l1 = b(a(rp,e), a(lp,e)); r2, l2 = b(a(rh,e), a(lh,e))
    print(f'| {e} | {l1} | {r1} | {l2} | {r2} | {m(lh,e)} / {m(rh,e)} |')
