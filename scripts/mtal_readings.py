"""MTAL's readings on their own: Table 6, its per-pair table and claims C11-C14 from
the MTAL runs of a suite alone (the rest of the grid need not be trained).

    PYTHONPATH=src .venv/bin/python scripts/mtal_readings.py demo

The suite's full tables (`make demo`) hold the same numbers; this reads only the
receipts of the cells MTAL's readings need (every MTAL method and reading, and the
relations stage's R), each checked against the current parameters and code as the
tables check them. Prints markdown; writes nothing.
"""

from __future__ import annotations

import copy
import dataclasses
import sys
from pathlib import Path

import pandas as pd

from hetmtl.params import load_params
from hetmtl.reporting import claims
from hetmtl.reporting.aggregate import pair_sharing_of, sharing_of
from hetmtl.reporting.collect import check_current, collect
from hetmtl.reporting.tables import pair_cells, sharing_cells


def mtal_only(params):
    """The grid reduced to MTAL's cells (its methods in each setting, every reading) and
    the claims of ours (C11-C14, the ones that read the readings)."""
    data = copy.deepcopy(params.data)
    data["shared_methods"] = []
    for spec in data["settings"].values():
        spec["methods"] = [m for m in spec["methods"] if m.startswith("mtal")]
    data["claims"]["items"] = {k: v for k, v in data["claims"]["items"].items() if v.get("ours")}
    return dataclasses.replace(params, data=data)


def table(text: pd.DataFrame) -> str:
    head = "| " + " | ".join(text.columns) + " |\n|" + "---|" * len(text.columns) + "\n"
    return head + "".join("| " + " | ".join(map(str, r)) + " |\n" for r in text.itertuples(index=False))


def main(suite: str) -> None:
    root = Path.cwd()
    params = mtal_only(load_params(root))
    check_current(params, suite, root)  # receipts of other parameters or code: refused, named
    records = collect(params, suite, root)
    print("## Table 6 (MTAL's readings)\n")
    print(table(sharing_cells(sharing_of(params, suite, records))[0]))
    print("## Table 6 per task pair\n")
    print(table(pair_cells(pair_sharing_of(params, suite, root, records))[0]))
    print("## Claims of ours\n")
    out = claims.evaluate(params, suite, records, relations=claims.relations_of(params, suite, root))
    cols = ["claim", "verdict", "comparisons", "needed", "better", "worse", "deciding", "effect", "ci", "n",
            "p_holm", "unit", "note"]
    print(table(out[cols].round(4)))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "demo")
