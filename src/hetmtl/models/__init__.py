"""Backbones under one contract (``base.py``): VGG and ResNet-18 from torchvision.

The registry (names, configurations) imports without torch; the modules
(``base.py``, ``vgg.py``, ``resnet.py``) are imported when first asked for.
"""

from hetmtl.models.registry import BACKBONES, BackboneSpec

_FROM_BASE = ("TaskNet", "build_task_net", "conv_names", "net_class", "ImageNetWeightsError", "imagenet_state",
              "load_imagenet")


def __getattr__(name: str):
    if name in _FROM_BASE:
        from hetmtl.models import base

        return getattr(base, name)
    raise AttributeError(f"module 'hetmtl.models' has no attribute {name!r}")


__all__ = ["BACKBONES", "BackboneSpec", *_FROM_BASE]
