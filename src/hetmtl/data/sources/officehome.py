"""Office-Home (protocol section 3): ``OfficeHomeDataset_10072016.zip``, the Art domain,
``Art/<Class>/NNNNN.jpg`` (65 classes; the per-domain mirror lacks the top folder).

The real archive holds four domains (``Art``, ``Clipart``, ``Product``, ``Real
World``: a space in the name) and two side files at the top, ``ImageInfo.csv``
and ``imagelist.txt``; so does the stand-in (the other domains with
:data:`OTHER_DOMAIN_IMAGES` images per class: only Art is used, and a layout
that reads them would change the counts and fail).

Stand-in: coloured object-like scenes built from a per-class prototype of
shapes, painted on a textured background (the Art style; the other domains in
the Amazon style, on white).
"""

from __future__ import annotations

from hetmtl.data.sources.common import Layout, Members, office_scenes, per_class

OFFICEHOME_CLASSES = (
    "Alarm_Clock Backpack Batteries Bed Bike Bottle Bucket Calculator Calendar Candles "
    "Chair Clipboards Computer Couch Curtains Desk_Lamp Drill Eraser Exit_Sign Fan "
    "File_Cabinet Flipflops Flowers Folder Fork Glasses Hammer Helmet Kettle Keyboard "
    "Knives Lamp_Shade Laptop Marker Monitor Mop Mouse Mug Notebook Oven Pan Paper_Clip "
    "Pen Pencil Postit_Notes Printer Push_Pin Radio Refrigerator Ruler Scissors "
    "Screwdriver Shelf Sink Sneakers Soda Speaker Spoon TV Table Telephone ToothBrush "
    "Toys Trash_Can Webcam"
).split()


TOP = "OfficeHomeDataset_10072016"
DOMAINS = ("Art", "Clipart", "Product", "Real World")
OTHER_DOMAIN_IMAGES = 1


def _officehome(n: int, rng_seed: int) -> Members:
    """``OfficeHomeDataset_10072016/<domain>/<Class>/NNNNN.jpg`` for the four
    domains (Art with ``n`` per class), and the side files."""
    lines = []
    for domain in DOMAINS:
        count = n if domain == "Art" else OTHER_DOMAIN_IMAGES
        for name, data in office_scenes(OFFICEHOME_CLASSES, f"{TOP}/{domain}", "art" if domain == "Art" else "amazon",
                                        lambda i: f"{i:05d}.jpg", count, rng_seed):
            lines.append(name.removeprefix(TOP + "/"))
            yield name, data
    yield f"{TOP}/imagelist.txt", ("\n".join(lines) + "\n").encode()
    yield f"{TOP}/ImageInfo.csv", ("image,source,url\n" + "".join(
        f"{line},stand-in,\n" for line in lines)).encode()


SOURCE = Layout(r"(?:OfficeHomeDataset_10072016/)?{domain}/(?P<cls>[^/]+)/[^/]+\.jpg",
                "Office-Home, one folder per domain and class, JPEG",
                tuple(OFFICEHOME_CLASSES), _officehome, lambda n: per_class(len(OFFICEHOME_CLASSES), n))
