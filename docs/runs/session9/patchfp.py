# Copies a checkpoint, changing one option in its fingerprint string (BinaryWriter: 7-bit length-prefixed UTF-8).
import sys
src, dst, old, new = sys.argv[1:5]
b = open(src, 'rb').read()
def rd(pos):
    n = 0; shift = 0
    while True:
        c = b[pos]; pos += 1; n |= (c & 0x7f) << shift; shift += 7
        if c < 0x80: return n, pos
def enc(n):
    out = bytearray()
    while n >= 0x80: out.append((n & 0x7f) | 0x80); n >>= 7
    out.append(n); return bytes(out)
n, p = rd(0); p += n          # magic
p += 4                        # version
start = p
n, p = rd(p); fp = b[p:p+n].decode(); end = p + n
print(fp)
assert fp.count(old) == 1, old
fp2 = fp.replace(old, new).encode()
open(dst, 'wb').write(b[:start] + enc(len(fp2)) + fp2 + b[end:])
print('->', fp2.decode())
