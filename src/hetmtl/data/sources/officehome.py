"""Office-Home (SPEC 3): ``OfficeHomeDataset_10072016.zip``, the Art domain,
``Art/<Class>/NNNNN.jpg`` (65 classes; the per-domain mirror lacks the top folder).

Stand-in: coloured object-like scenes built from a per-class prototype of
shapes, painted on a textured background (the Art style).
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


def _officehome(n: int, rng_seed: int) -> Members:
    """``OfficeHomeDataset_10072016/Art/<Class>/NNNNN.jpg`` (the Art domain only)."""
    return office_scenes(OFFICEHOME_CLASSES, "OfficeHomeDataset_10072016/Art", "art",
                   lambda i: f"{i:05d}.jpg", n, rng_seed)


SOURCE = Layout(r"(?:OfficeHomeDataset_10072016/)?{domain}/(?P<cls>[^/]+)/[^/]+\.jpg",
                "Office-Home, one folder per domain and class, JPEG",
                tuple(OFFICEHOME_CLASSES), _officehome, lambda n: per_class(len(OFFICEHOME_CLASSES), n))
