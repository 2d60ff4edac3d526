"""Dense bf16 tensor-core peaks (TFLOP/s, without sparsity) of known GPUs, from
their vendors' data sheets: the denominator of MFU. A device not listed has no
MFU unless ``hetmtl bench --peak-tflops`` gives its peak."""

from __future__ import annotations

# matched against torch.cuda.get_device_name() (case-insensitive), first match wins
PEAKS_BF16: dict[str, float] = {
    "H200": 989.4,        # H200 SXM
    "H100 PCIe": 756.5,
    "H100": 989.4,        # H100 SXM
    "A100": 312.0,
    "L40S": 362.05,
    "L4": 121.0,
}


def peak_tflops(device_name: str, override: float | None = None) -> float | None:
    """The peak of ``device_name`` (``override`` first), None when unknown."""
    if override is not None:
        return float(override)
    name = device_name.lower()
    for key, value in PEAKS_BF16.items():
        if key.lower() in name:
            return value
    return None
