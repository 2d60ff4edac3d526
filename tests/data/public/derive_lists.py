"""Derive office_lists.json from thuml/CDAN's public file lists (run once; kept for provenance).

    git clone https://github.com/thuml/CDAN && git -C CDAN checkout c904cd3f2fe092bb5175be1c5b6e42fa2036dece
    python tests/data/public/derive_lists.py CDAN > tests/data/public/office_lists.json

Each list line is ``<path> <label>``; the fixture keeps, per data set, the
class folder names with their image counts and the file name form, after
checking that every class's files are numbered 1..count without a gap (so the
names are given by the count).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter, defaultdict

REPO, COMMIT = "thuml/CDAN", "c904cd3f2fe092bb5175be1c5b6e42fa2036dece"
LISTS = {"office31_amazon": ("data/office/amazon_list.txt", "frame_{:04d}.jpg"),
         "officehome_art": ("data/office-home/Art.txt", "{:05d}.jpg")}


def derive(checkout: str) -> dict:
    out = {"source": {"repository": f"https://github.com/{REPO}", "commit": COMMIT}}
    for key, (path, form) in LISTS.items():
        text = subprocess.run(["git", "-C", checkout, "show", f"{COMMIT}:{path}"], capture_output=True,
                              text=True, check=True).stdout
        names: dict[str, list[str]] = defaultdict(list)
        for line in filter(None, map(str.strip, text.splitlines())):
            file, _label = line.rsplit(" ", 1)
            cls, name = file.split("/")[-2:]
            names[cls].append(name)
        counts = Counter({c: len(v) for c, v in names.items()})
        for c, v in names.items():
            numbers = sorted(int(re.sub(r"\D", "", n)) for n in v)
            assert numbers == list(range(1, len(v) + 1)), c
            assert sorted(v) == sorted(form.format(i) for i in numbers), c
        out[key] = {"list": path, "file_name": form, "images": sum(counts.values()),
                    "classes": dict(sorted(counts.items()))}
    return out


if __name__ == "__main__":
    print(json.dumps(derive(sys.argv[1]), indent=1))
