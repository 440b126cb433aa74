#!/usr/bin/env python3
"""Writes an IDX dataset (MNIST, Fashion-MNIST, EMNIST, KMNIST, ...) as an image folder of PNG
files, `OUT/train/<label>/<index>.png` and `OUT/test/<label>/<index>.png`: a quick way to get a
real folder for `data.dataset = "image-folder"`, and how docs/performance.md compares the two
input paths on the same images.

    python3 scripts/examples/idx_to_folder.py ../shared/datasets/mnist mnist_png [--limit N]

DIR must hold train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and
t10k-labels-idx1-ubyte (each raw or .gz). Standard library only.
"""

import argparse
import gzip
import struct
import zlib
from pathlib import Path

SPLITS = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def read(directory, name):
    for candidate in (directory / name, directory / (name + ".gz")):
        if candidate.exists():
            data = candidate.read_bytes()
            return gzip.decompress(data) if candidate.suffix == ".gz" else data
    raise SystemExit(f"error: {directory / name}(.gz) not found")


def png(width, height, pixels):
    rows = b"".join(b"\x00" + pixels[r * width:(r + 1) * width] for r in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows, 6)) + chunk(b"IEND", b""))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("idx_dir", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--limit", type=int, help="at most N images per split")
    args = p.parse_args()
    for split, (images_name, labels_name) in SPLITS.items():
        images, labels = read(args.idx_dir, images_name), read(args.idx_dir, labels_name)
        magic, count, rows, cols = struct.unpack(">IIII", images[:16])
        if magic != 2051 or struct.unpack(">II", labels[:8])[0] != 2049:
            raise SystemExit(f"error: {args.idx_dir}: not IDX image/label files")
        count = min(count, args.limit or count)
        size = rows * cols
        for i in range(count):
            folder = args.out / split / str(labels[8 + i])
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{i:05d}.png").write_bytes(png(cols, rows, images[16 + i * size:16 + (i + 1) * size]))
        print(f"{split}: {count} {rows}x{cols} images to {args.out / split}")


if __name__ == "__main__":
    main()
