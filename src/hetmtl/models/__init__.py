"""Backbones: VGG definitions from torchvision, per-task first conv and head.

The registry (names, configurations) imports without torch; the modules
(``vgg.py``) are imported when first asked for.
"""

from hetmtl.models.registry import BACKBONES, BackboneSpec

_FROM_VGG = ("TaskNet", "build_task_net", "conv_layers", "conv_names")


def __getattr__(name: str):
    if name in _FROM_VGG:
        from hetmtl.models import vgg

        return getattr(vgg, name)
    raise AttributeError(f"module 'hetmtl.models' has no attribute {name!r}")


__all__ = ["BACKBONES", "BackboneSpec", *_FROM_VGG]
