#!/usr/bin/env python3
"""Checks that ARCHITECTURE.md's code map names every Rust source file of
every crate (by its file name, in backquotes), so the map cannot fall behind
the tree. Prints what is missing and exits 1; silent and 0 when complete.

    python3 scripts/check-code-map.py
"""

import pathlib
import sys

root = pathlib.Path(__file__).resolve().parent.parent
text = (root / "ARCHITECTURE.md").read_text()
missing = []
for source in sorted((root / "crates").glob("*/src/**/*.rs")):
    relative = source.relative_to(root).as_posix()
    named = f"`{source.name}`" in text or f"`{relative}`" in text
    if not named:
        missing.append(relative)
for name in missing:
    print(f"ARCHITECTURE.md does not name {name}")
sys.exit(1 if missing else 0)
