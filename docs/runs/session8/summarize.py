# Summarises the DBpedia ablation: per variant, the test accuracy after E epochs and the best of them per seed, their
# means, and wall minutes for those E epochs. Usage: python3 summarize.py [FOLDER of curve-dbpedia-*.csv] [E]
# (session 8: /work/runs/s7/dbp and 10; session 10: /work/runs/s10/out and 20, or 10 for the 10-epoch prefix).
import glob, os, re, statistics, collections, sys
D = sys.argv[1] if len(sys.argv) > 1 else '/work/runs/s7/dbp'
E = int(sys.argv[2]) if len(sys.argv) > 2 else 10
rows = collections.defaultdict(dict)
for f in sorted(glob.glob(D + '/curve-dbpedia-*.csv')):
    name = os.path.basename(f)[len('curve-dbpedia-'):-4]
    m = re.match(r'(.*)-seed(\d+)$', name)
    variant, seed = (m.group(1), int(m.group(2))) if m else (name, 1)
    lines = [l.split(',') for l in open(f).read().split('\n')[1:] if l]
    joint = [l for l in lines if l[1] == '0'][:E]
    pre = [l for l in lines if l[1] == '1']
    acc = [float(l[2]) * 100 for l in joint]
    secs = sum(float(l[6]) for l in pre + joint)
    rows[variant][seed] = (acc, secs)
order = ['lstm', 'r-lstm', 'p-lstm', 'halving-3', 'segments-4', 'sampling-0.5', 'pretrain-1', 'decoder-1-layer', 'forward-order', 'distant-past-half', 'spill-sixth']
print(f'| variant | seed 1 | seed 2 | seed 3 | mean after {E} | mean best | wall min per run |')
print('|---|---|---|---|---|---|---|')
for v in order + [v for v in rows if v not in order]:
    if v not in rows: continue
    r = rows[v]
    cells = []
    for s in (1, 2, 3):
        if s in r and len(r[s][0]) >= E:
            cells.append(f'{r[s][0][-1]:.1f} (best {max(r[s][0]):.1f})')
        else:
            cells.append('–')
    done = [r[s] for s in (1, 2, 3) if s in r and len(r[s][0]) >= E]
    mean = f'{statistics.mean(a[-1] for a, _ in done):.1f}' if done else '–'
    best = f'{statistics.mean(max(a) for a, _ in done):.1f}' if done else '–'
    wall = f'{statistics.mean(t for _, t in done) / 60:.1f}' if done else '–'
    print(f'| {v} | ' + ' | '.join(cells) + f' | {mean} | {best} | {wall} |')
