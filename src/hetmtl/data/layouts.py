"""Where images sit inside each source archive, and what their class is.

One entry per real archive layout (SPEC section 3). A pattern names the class
folder (``cls``) of every image member; the task's ``domain`` fills in the
domain folder for the Office sets, and the per-domain mirrors (which lack the
top folder of the whole archive) match the same pattern.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Layout:
    pattern: str  # regex with a ``cls`` group; ``{domain}`` is substituted
    description: str

    def regex(self, domain: str | None = None) -> re.Pattern:
        return re.compile(self.pattern.replace("{domain}", re.escape(domain or "")))

    def classify(self, names: list[str], domain: str | None = None) -> dict[str, list[str]]:
        """Map class name -> sorted member names."""
        rx = self.regex(domain)
        out: dict[str, list[str]] = {}
        for name in names:
            m = rx.fullmatch(name)
            if m:
                out.setdefault(m.group("cls"), []).append(name)
        return {k: sorted(v) for k, v in sorted(out.items())}


LAYOUTS: dict[str, Layout] = {
    "chars74k_hnd": Layout(r"English/Hnd/Img/(?P<cls>Sample\d{3})/img\d{3}-\d{3}\.png",
                           "Chars74K hand-written characters, RGB PNG"),
    "chars74k_fnt": Layout(r"English/Fnt/(?P<cls>Sample\d{3})/img\d{3}-\d{5}\.png",
                           "Chars74K characters from computer fonts, grayscale PNG"),
    "coil20_unproc": Layout(r"coil-20-unproc/(?P<cls>obj\d+)__\d+\.png",
                            "COIL-20 unprocessed, 72 poses per object, grayscale PNG"),
    "coil20_proc": Layout(r"coil-20-proc/(?P<cls>obj\d+)__\d+\.png",
                          "COIL-20 processed, 20 objects x 72 poses, grayscale PNG"),
    "officehome": Layout(r"(?:OfficeHomeDataset_10072016/)?{domain}/(?P<cls>[^/]+)/[^/]+\.jpg",
                         "Office-Home, one folder per domain and class, JPEG"),
    "office31": Layout(r"(?:domain_adaptation_images/)?{domain}/images/(?P<cls>[^/]+)/[^/]+\.jpg",
                       "Office-31, <domain>/images/<class>/frame_NNNN.jpg"),
}
