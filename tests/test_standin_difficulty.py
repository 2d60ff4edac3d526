"""The stand-ins leave room above (issue 30): no task of the grid is separable on
raw pixels by a nearest-class-mean classifier at the tiny suite's scale (20
images per class, 16 px), a proxy that needs no training. The stand-ins before
issue 30 failed it (Coil-20: 100%: distinct objects on a clean turntable put every
method at the ceiling); the demo's Tables 3/5 first row is the measure itself."""

from __future__ import annotations

import numpy as np
import pytest

from hetmtl.data.prepare import decode
from hetmtl.data.sources import LAYOUTS

CEILING = 0.9


def nearest_mean_accuracy(layout: str, classes: set[str], n: int, channels: int, domain: str | None = None,
                          size: int = 16, every: int = 1) -> float:
    """Train on a class's even images, test on its odd ones (``every``: keep one in so many)."""
    spec, images = LAYOUTS[layout], {}
    for name, data in spec.generate(n, 0):
        m = spec.regex(domain).fullmatch(name)
        if m and m.group("cls") in classes:
            images.setdefault(m.group("cls"), []).append(decode(data, channels, size).astype(np.float32).ravel())
        elif m and len(images) == len(classes):
            break  # the generators go class by class: every wanted class is complete
    keys = sorted(images)
    x = {k: np.stack(images[k])[::every] for k in keys}
    means = np.stack([x[k][0::2].mean(0) for k in keys])
    hits = [((x[k][1::2, None, :] - means[None]) ** 2).sum(-1).argmin(1) == i for i, k in enumerate(keys)]
    return float(np.concatenate(hits).mean())


@pytest.mark.slow  # generating five stand-ins: about 20 s on 2 cores (the default suite is over its aim)
@pytest.mark.parametrize("task", ["HD", "Typographic", "Coil-20", "Art", "Amazon"])
def test_no_standin_task_is_separable_on_pixels(params, task):
    spec = params["tasks"][task]
    source = params["sources"][spec["source"]]
    pool = spec["classes"]["pool"]
    classes = set(pool) if isinstance(pool, list) else (
        {f"Sample{k:03d}" for k in range(pool["range"][1], pool["range"][2] + 1)} if isinstance(pool, dict) else
        set(LAYOUTS[source["layout"]].classes[:10]))
    acc = nearest_mean_accuracy(source["layout"], classes, 20, source["channels"], spec.get("domain"),
                                every=3 if task == "Coil-20" else 1)
    assert 1 / len(classes) <= acc + 0.05 and acc < CEILING, (task, acc)
