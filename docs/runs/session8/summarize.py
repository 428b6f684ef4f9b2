# Summarises the DBpedia ablation: per variant, final (epoch 10) and best test accuracy per seed, their means, and wall minutes.
import glob, os, re, statistics, collections
D = '/work/runs/s7/dbp'
rows = collections.defaultdict(dict)
for f in sorted(glob.glob(D + '/curve-dbpedia-*.csv')):
    name = os.path.basename(f)[len('curve-dbpedia-'):-4]
    m = re.match(r'(.*)-seed(\d+)$', name)
    variant, seed = (m.group(1), int(m.group(2))) if m else (name, 1)
    lines = [l.split(',') for l in open(f).read().split('\n')[1:] if l]
    acc = [float(l[2]) * 100 for l in lines if l[1] == '0']
    secs = sum(float(l[6]) for l in lines)
    rows[variant][seed] = (acc, secs)
order = ['lstm', 'r-lstm', 'p-lstm', 'halving-3', 'segments-4', 'sampling-0.5', 'pretrain-1', 'decoder-1-layer', 'forward-order', 'distant-past-half', 'spill-sixth']
print('| variant | seed 1 | seed 2 | seed 3 | mean after 10 | mean best | wall min per run |')
print('|---|---|---|---|---|---|---|')
for v in order + [v for v in rows if v not in order]:
    if v not in rows: continue
    r = rows[v]
    cells = []
    for s in (1, 2, 3):
        if s in r and len(r[s][0]) >= 10:
            cells.append(f'{r[s][0][-1]:.1f} (best {max(r[s][0]):.1f})')
        else:
            cells.append('–')
    done = [r[s] for s in (1, 2, 3) if s in r and len(r[s][0]) >= 10]
    mean = f'{statistics.mean(a[-1] for a, _ in done):.1f}' if done else '–'
    best = f'{statistics.mean(max(a) for a, _ in done):.1f}' if done else '–'
    wall = f'{statistics.mean(t for _, t in done) / 60:.1f}' if done else '–'
    print(f'| {v} | ' + ' | '.join(cells) + f' | {mean} | {best} | {wall} |')
