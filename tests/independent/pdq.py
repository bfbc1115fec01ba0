"""nara's PDQ hashes checked against Meta's reference C++ implementation
(PyPI `pdqhash`, its Python binding): pictures drawn here, saved as PNG and
JPEG, hashed by `nara algorithms pdq` and by the reference; every pair must
agree to within 4 bits (floating point differs a little between the two;
unrelated pictures are ~128 bits apart; in practice they are identical or 2
bits apart). Also compares the quality figures, and the eight orientations
nara matches an image in (`--orientations`): each must be the reference's
hash of the picture turned (and mirrored) that way by PIL.

    python tests/independent/pdq.py path/to/nara
"""
import random
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pdqhash
from PIL import Image, ImageDraw


def reference_hex(bits):
    # The binding's vector holds the 256 bits most significant first: read as
    # one binary number, it is Meta's hex form.
    return f"{int(''.join(str(int(b)) for b in bits), 2):064x}"


def distance(a, b):
    return bin(int(a, 16) ^ int(b, 16)).count("1")


def picture(seed, width, height):
    rng = random.Random(seed)
    img = Image.new("RGB", (width, height), tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(img)
    for _ in range(rng.randrange(6, 14)):
        x, y = rng.randrange(width), rng.randrange(height)
        r = rng.randrange(width // 16, width // 4 + 2)
        box = [x - r, y - r, x + r, y + r]
        fill = tuple(rng.randrange(256) for _ in range(3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=fill)
    return img


def main():
    nara = sys.argv[1]
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for seed in range(24):
            width, height = [(320, 240), (500, 375), (200, 300)][seed % 3]
            img = picture(seed, width, height)
            path = Path(tmp) / (f"p{seed}.png" if seed % 2 == 0 else f"p{seed}.jpg")
            img.save(path, quality=90) if path.suffix == ".jpg" else img.save(path)
            files.append(path)
        out = subprocess.run([nara, "algorithms", "pdq", *map(str, files)], check=True,
                             capture_output=True, text=True).stdout
        ours = {line.rsplit(",", 1)[1]: line.split(",") for line in out.strip().splitlines()}
        worst = 0
        for path in files:
            pixels = np.asarray(Image.open(path).convert("RGB"))
            bits, quality = pdqhash.compute(pixels)
            theirs = reference_hex(bits)
            hash_hex, our_quality, _ = ours[str(path)]
            d = distance(hash_hex, theirs)
            worst = max(worst, d)
            # The crate's quality sums the gradients before rounding, Meta's
            # truncates each: nara's figure runs a few points higher.
            if d > 4 or not 0 <= int(our_quality) - int(quality) <= 10:
                failures += 1
                print(f"FAIL {path.name}: nara {hash_hex} q{our_quality}, reference {theirs} q{quality}: {d} bits apart")
        print(f"pdq: {len(files)} pictures (PNG and JPEG) hashed by nara and by Meta's reference; at most {worst} bits apart, {failures} failures")
        failures += orientations(nara, files)
    sys.exit(1 if failures else 0)


def turned(img, orientation):
    """The picture as nara's orientation names it: mirrored left to right
    first, then turned clockwise (PIL's ROTATE_n turns counter-clockwise)."""
    mirrored, _, degrees = orientation.rpartition("+")
    if mirrored:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    clockwise = {"0": None, "90": Image.Transpose.ROTATE_270,
                 "180": Image.Transpose.ROTATE_180, "270": Image.Transpose.ROTATE_90}[degrees]
    return img.transpose(clockwise) if clockwise is not None else img


def orientations(nara, files):
    out = subprocess.run([nara, "algorithms", "pdq", "--orientations", *map(str, files)],
                         check=True, capture_output=True, text=True).stdout
    failures, worst, compared = 0, 0, 0
    for line in out.strip().splitlines():
        hash_hex, _, orientation, path = line.split(",", 3)
        img = turned(Image.open(path).convert("RGB"), orientation)
        bits, _ = pdqhash.compute(np.asarray(img))
        d = distance(hash_hex, reference_hex(bits))
        worst, compared = max(worst, d), compared + 1
        if d > 4:
            failures += 1
            print(f"FAIL {Path(path).name} {orientation}: nara {hash_hex}, reference {reference_hex(bits)}: {d} bits apart")
    if compared != 8 * len(files):
        failures += 1
        print(f"FAIL: {compared} orientations printed for {len(files)} pictures")
    print(f"pdq: {compared} orientations (8 a picture) hashed by nara and by Meta's reference of the turned picture; at most {worst} bits apart, {failures} failures")
    return failures


if __name__ == "__main__":
    main()
