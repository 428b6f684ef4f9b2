#!/usr/bin/env python3
"""Cuts the small test fixtures in this folder from the full public data sets.

Usage: python3 test/Fixtures/make-fixtures.py [FULL_DATA_FOLDER]   (default: $AUXRNN_DATA, then ../shared/data)
The output is deterministic: the same full data always gives the same files (gzip headers carry no time stamp).
"""
import csv, gzip, io, os, shutil, struct, sys

here = os.path.dirname(os.path.abspath(__file__))
src = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("AUXRNN_DATA") or os.path.join(here, "..", "..", "..", "shared", "data")
src = os.path.abspath(src)


def out(*parts):
    path = os.path.join(here, *parts)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return path


def write_gz(path, data):
    with open(path, "wb") as f:
        with gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0, compresslevel=9) as g:
            g.write(data)


# ---- MNIST: idx files (gzipped) and PNG files -------------------------------------------------------------------
def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, count = struct.unpack(">II", data[:8])
    dims = magic & 0xFF
    header = 4 + 4 * dims
    shape = struct.unpack(">" + "I" * dims, data[4:header])
    size = 1
    for d in shape[1:]:
        size *= d
    return data[:header], shape, [data[header + i * size: header + (i + 1) * size] for i in range(count)]


def write_idx(path, header, shape, rows):
    dims = len(shape)
    new_header = header[:4] + struct.pack(">" + "I" * dims, len(rows), *shape[1:])
    write_gz(path, new_header + b"".join(rows))


mnist = os.path.join(src, "mnist")
TRAIN_ROWS = 300
h, s, rows = read_idx(os.path.join(mnist, "train-images-idx3-ubyte.gz"))
write_idx(out("mnist", "train-images-idx3-ubyte.gz"), h, s, rows[:TRAIN_ROWS])
h, s, rows = read_idx(os.path.join(mnist, "train-labels-idx1-ubyte.gz"))
write_idx(out("mnist", "train-labels-idx1-ubyte.gz"), h, s, rows[:TRAIN_ROWS])

# t10k: the rows of 20 PNG files per digit (the first 20 by file name), then t10k rows 0.. up to 300 rows in all,
# in t10k order. Each PNG is renamed after its row in the fixture file, so png-sample/<digit>/<n>.png is row n.
PNGS_PER_DIGIT, TEST_ROWS = 20, 300
pngs = {}
for digit in range(10):
    folder = os.path.join(mnist, "png-sample", str(digit))
    for name in sorted(os.listdir(folder))[:PNGS_PER_DIGIT]:
        pngs[int(name[:-4])] = (digit, os.path.join(folder, name))
chosen = set(pngs)
extra = 0
while len(chosen) < TEST_ROWS:
    if extra not in chosen:
        chosen.add(extra)
    extra += 1
chosen = sorted(chosen)
hi, si, images = read_idx(os.path.join(mnist, "t10k-images-idx3-ubyte.gz"))
hl, sl, labels = read_idx(os.path.join(mnist, "t10k-labels-idx1-ubyte.gz"))
write_idx(out("mnist", "t10k-images-idx3-ubyte.gz"), hi, si, [images[i] for i in chosen])
write_idx(out("mnist", "t10k-labels-idx1-ubyte.gz"), hl, sl, [labels[i] for i in chosen])
shutil.rmtree(out("mnist", "png-sample", "x")[:-2], ignore_errors=True)
with open(out("mnist", "png-sample", "t10k-rows.csv"), "w", newline="\n") as index:
    index.write("fixture_row,t10k_row,digit\n")
    for row, t10k in enumerate(chosen):
        if t10k in pngs:
            digit, path = pngs[t10k]
            assert labels[t10k][0] == digit
            shutil.copyfile(path, out("mnist", "png-sample", str(digit), f"{row}.png"))
            index.write(f"{row},{t10k},{digit}\n")

# ---- CIFAR-10: binary batches --------------------------------------------------------------------------------------
cifar = os.path.join(src, "cifar10")
RECORD = 3073
for name, count in (("test_batch.bin", 40), ("data_batch_1.bin", 60)):
    with open(os.path.join(cifar, name), "rb") as f:
        data = f.read(RECORD * count)
    with open(out("cifar10", name), "wb") as f:
        f.write(data)
shutil.copyfile(os.path.join(cifar, "batches.meta.txt"), out("cifar10", "batches.meta.txt"))

# ---- DBpedia: Zhang csv, the first N documents of each class in file order ----------------------------------------
db = os.path.join(src, "dbpedia")
for name, per_class in (("train.csv", 40), ("test.csv", 15)):
    taken, lines = {}, []
    with open(os.path.join(db, name), "rb") as f:
        raw = f.read().decode("utf-8")
    # Records may not contain line breaks in this subset; check and keep the original bytes of each line.
    for line in raw.splitlines(keepends=True):
        record = next(csv.reader([line]))
        assert len(record) == 3, line
        c = int(record[0])
        if taken.get(c, 0) < per_class:
            taken[c] = taken.get(c, 0) + 1
            lines.append(line)
    with open(out("dbpedia", name), "wb") as f:
        f.write("".join(lines).encode("utf-8"))
shutil.copyfile(os.path.join(db, "classes.txt"), out("dbpedia", "classes.txt"))

# ---- Clothing photos: a few per class and split ------------------------------------------------------------------
for split, per_class in (("train", 4), ("validation", 2), ("test", 3)):
    shutil.rmtree(out("clothing128", split, "x")[:-2], ignore_errors=True)
    for cls in sorted(os.listdir(os.path.join(src, "clothing128", split))):
        folder = os.path.join(src, "clothing128", split, cls)
        for name in sorted(os.listdir(folder))[:per_class]:
            shutil.copyfile(os.path.join(folder, name), out("clothing128", split, cls, name))
print("fixtures written under", here)
