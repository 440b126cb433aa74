#!/usr/bin/env python3
"""Writes a small image-folder dataset of drawn shapes, for trying `data.dataset = "image-folder"`.

    python3 scripts/examples/make_shapes.py my_shapes            # my_shapes/train/<class>/*.png, test/…
    python3 scripts/examples/make_shapes.py my_shapes --one-tree # my_shapes/<class>/*.png (split by seed)

Classes: circle, square, triangle, cross; each shape at a random position, size and
brightness on a noisy background (grey-scale, or random colours with --rgb). Standard library
only (PNG written with zlib), deterministic for a given --seed.
"""

import argparse
import math
import random
import struct
import zlib
from pathlib import Path

CLASSES = ["circle", "square", "triangle", "cross"]


def png_bytes(width, height, channels, rows):
    """PNG of 8-bit grey (channels=1) or RGB (3) rows of bytes."""
    color = {1: 0, 3: 2}[channels]
    raw = b"".join(b"\x00" + bytes(row) for row in rows)

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, color, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def inside(shape, x, y, cx, cy, r):
    dx, dy = x - cx, y - cy
    if shape == "circle":
        return r * 0.7 <= math.hypot(dx, dy) <= r
    if shape == "square":
        return max(abs(dx), abs(dy)) <= r and max(abs(dx), abs(dy)) >= r * 0.7
    if shape == "triangle":
        # Upward triangle: inside the three half-planes, outline only.
        top, base = cy - r, cy + r * 0.8
        if not (top <= y <= base):
            return False
        half = (y - top) / (base - top) * r
        edge = abs(dx) <= half and (abs(dx) >= half - r * 0.3 or y >= base - r * 0.3)
        return edge
    if shape == "cross":
        return (abs(dx) <= r * 0.2 and abs(dy) <= r) or (abs(dy) <= r * 0.2 and abs(dx) <= r)
    raise ValueError(shape)


def draw(shape, size, rng, rgb):
    cx = rng.uniform(size * 0.35, size * 0.65)
    cy = rng.uniform(size * 0.35, size * 0.65)
    r = rng.uniform(size * 0.2, size * 0.32)
    fg = [rng.randint(150, 255) for _ in range(3)] if rgb else [rng.randint(150, 255)] * 3
    rows = []
    for y in range(size):
        row = []
        for x in range(size):
            on = inside(shape, x + 0.5, y + 0.5, cx, cy, r)
            noise = rng.randint(0, 40)
            px = [min(255, c if on else noise) for c in fg]
            row.extend(px if rgb else px[:1])
        rows.append(row)
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path, help="folder to create")
    p.add_argument("--per-class", type=int, default=60, help="training images per class (default 60)")
    p.add_argument("--test-per-class", type=int, default=20, help="test images per class (default 20)")
    p.add_argument("--size", type=int, default=40, help="image side in pixels (default 40)")
    p.add_argument("--rgb", action="store_true", help="colour images (default grey-scale)")
    p.add_argument("--one-tree", action="store_true", help="write <class>/ folders only, no train/ test/")
    p.add_argument("--uneven", action="store_true", help="class k gets (k+1)/4 of the images: uneven classes")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    rng = random.Random(args.seed)
    channels = 3 if args.rgb else 1
    splits = [("", args.per_class + args.test_per_class)] if args.one_tree else [
        ("train", args.per_class), ("test", args.test_per_class)]
    total = 0
    for split, count in splits:
        for k, shape in enumerate(CLASSES):
            n = max(1, count * (k + 1) // len(CLASSES)) if args.uneven else count
            folder = args.out / split / shape
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                rows = draw(shape, args.size, rng, args.rgb)
                (folder / f"{shape}-{i:04d}.png").write_bytes(png_bytes(args.size, args.size, channels, rows))
                total += 1
    print(f"wrote {total} {args.size}x{args.size} {'RGB' if args.rgb else 'grey-scale'} images of {len(CLASSES)} classes to {args.out}")


if __name__ == "__main__":
    main()
