"""Dense bf16 tensor-core peaks (TFLOP/s, without sparsity) of known GPUs, from
their vendors' data sheets: the denominator of MFU. A device not listed has no
MFU unless ``hetmtl bench --peak-tflops`` gives its peak."""

from __future__ import annotations

import re

# a pattern (regular expression, case-insensitive) of torch.cuda.get_device_name() -> the part's peak;
# the first match wins; a variant not listed (H100 NVL, L40 without S, ...) has no MFU without --peak-tflops
PEAKS_BF16: dict[str, float] = {
    r"\bH200\b": 989.4,                 # H200 SXM
    r"\bH100 PCIe\b": 756.5,
    r"\bH100 (80GB HBM3|SXM)": 989.4,   # H100 SXM ("NVIDIA H100 80GB HBM3")
    r"\bA100\b": 312.0,                 # SXM and PCIe
    r"\bL40S\b": 362.05,
    r"\bL4\b": 121.0,
}


KNOWN = "H200, H100 PCIe, H100 SXM (80GB HBM3), A100, L40S, L4"


def peak_tflops(device_name: str, override: float | None = None) -> float | None:
    """The peak of ``device_name`` (``override`` first), None when unknown."""
    if override is not None:
        return float(override)
    for pattern, value in PEAKS_BF16.items():
        if re.search(pattern, device_name, flags=re.IGNORECASE):
            return value
    return None
