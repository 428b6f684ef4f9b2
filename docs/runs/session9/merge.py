# Appends the epochs a queue added (in OUT's csv) to a committed docs curve, keeping the committed rows (hand-corrected
# wall times for held epochs) and continuing their cumulative minutes; precision column = bfloat16 for new rows.
import sys
base, new, out = sys.argv[1:4]
rows = [l.rstrip('\n').split(',') for l in open(base)]
head, body = rows[0], rows[1:]
last = int(body[-1][0]); cum = float(body[-1][7])
for l in list(open(new))[1:]:
    f = l.rstrip('\n').split(',')
    if int(f[0]) <= last: continue
    cum += int(f[6]) / 60
    f[7] = f'{cum:.1f}'
    body.append(f + ['bfloat16'])
open(out, 'w').write('\n'.join(','.join(r) for r in [head] + body) + '\n')
print(out, len(body), 'epochs')
