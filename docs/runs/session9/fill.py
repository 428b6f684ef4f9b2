import subprocess, sys
summary, best, last = sys.argv[1:4]
t = subprocess.run(['python3', '/work/runs/s9/table.py'], capture_output=True, text=True).stdout.strip()
s = open('/work/runs/s9/section.md').read().replace('TABLE', t).replace('SUMMARY', summary).replace('BEST', best).replace('LAST', last)
p = '/work/main/docs/results.md'
r = open(p).read()
i = r.index('## Session 8 (')
if '## Session 9 (' in r:
    j = r.index('## Session 9 ('); r = r[:j] + r[i:]; i = r.index('## Session 8 (')
open(p, 'w').write(r[:i] + s + '\n' + r[i:])
