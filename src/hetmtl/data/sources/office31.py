"""Office-31 (protocol section 3): ``domain_adaptation_images.tar.gz``, the amazon domain,
``amazon/images/<class>/frame_NNNN.jpg`` (31 classes).

Stand-in: coloured object-like scenes centred on white (the Amazon style);
classes that Office-31 shares with Office-Home share their prototype
(:func:`hetmtl.data.sources.common._prototype_key`), as real objects would.
"""

from __future__ import annotations

from hetmtl.data.sources.common import Layout, Members, office_scenes, per_class

OFFICE31_CLASSES = (
    "back_pack bike bike_helmet bookcase bottle calculator desk_chair desk_lamp "
    "desktop_computer file_cabinet headphones keyboard laptop_computer letter_tray "
    "mobile_phone monitor mouse mug paper_notebook pen phone printer projector punchers "
    "ring_binder ruler scissors speaker stapler tape_dispenser trash_can"
).split()


DOMAINS = ("amazon", "dslr", "webcam")
OTHER_DOMAIN_IMAGES = 1


def _office31(n: int, rng_seed: int) -> Members:
    """``<domain>/images/<class>/frame_NNNN.jpg`` for the three domains (amazon
    with ``n`` per class, the others with OTHER_DOMAIN_IMAGES: only amazon is used)."""
    for domain in DOMAINS:
        yield from office_scenes(OFFICE31_CLASSES, f"{domain}/images", "amazon",
                                 lambda i: f"frame_{i:04d}.jpg", n if domain == "amazon" else OTHER_DOMAIN_IMAGES,
                                 rng_seed)


SOURCE = Layout(r"(?:domain_adaptation_images/)?{domain}/images/(?P<cls>[^/]+)/[^/]+\.jpg",
                "Office-31, <domain>/images/<class>/frame_NNNN.jpg",
                tuple(OFFICE31_CLASSES), _office31, lambda n: per_class(len(OFFICE31_CLASSES), n))
