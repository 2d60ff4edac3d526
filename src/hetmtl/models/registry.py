"""The backbone registry: names and configurations, without torch.

Parameter validation (``hetmtl.params``, which the Snakefile and every command
load) checks ``suite.backbone`` against this registry before any job runs; it
must not pay torch's import for that. A spec's ``family`` names the module
that builds it (``hetmtl.models.<family>``, a ``Net`` under the contract of
``base.py``): adding a backbone is its module and one line here.
"""

from __future__ import annotations

from dataclasses import dataclass

# torchvision's VGG-16 configuration "D" (torchvision.models.vgg.cfgs["D"]; a
# test holds the two equal). Spelled out so that a job does not import
# torchvision (2.5 s of every job's start) unless it needs torchvision's VGG
# classifier or ImageNet weights.
VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    cfg: tuple  # torchvision VGG config: channel counts and "M" for max-pool (VGG only)
    head: str  # "gap_linear" or "vgg_classifier"
    batch_norm: bool = False  # torchvision's VGG-BN layout (conv, BN, ReLU)
    imagenet_weights: str | None = None  # torchvision weights enum name, if any
    family: str = "vgg"  # the module that builds it: hetmtl.models.<family>


BACKBONES: dict[str, BackboneSpec] = {
    # The small configs train from scratch on CPU in minutes; they use the
    # VGG-BN layout, without which plain VGG sits on its initial plateau for
    # far longer than a CPU demo can afford (measured: 12 demo epochs at the
    # paper's lr 0.01 left HD at chance without BN).
    # the smallest config: two blocks of one conv each (tests and CI)
    "vgg_tiny": BackboneSpec("vgg_tiny", (8, "M", 16, "M"), "gap_linear", batch_norm=True),
    # four blocks of one conv each (the offline demo)
    "vgg_small": BackboneSpec("vgg_small", (16, "M", 32, "M", 64, "M", 64, "M"), "gap_linear", batch_norm=True),
    # VGG-16, torchvision's definition (the paper's backbone), for ImageNet weights
    "vgg16": BackboneSpec("vgg16", VGG16_CFG, "vgg_classifier",
                          imagenet_weights="VGG16_Weights.IMAGENET1K_V1"),
    # VGG-16 with BatchNorm (torchvision's vgg16_bn): the paper suite from scratch,
    # where plain VGG-16 on a few hundred images per task would not leave its plateau
    "vgg16_bn": BackboneSpec("vgg16_bn", VGG16_CFG, "vgg_classifier", batch_norm=True,
                             imagenet_weights="VGG16_BN_Weights.IMAGENET1K_V1"),
    "resnet18": BackboneSpec("resnet18", (), "gap_linear", True, "ResNet18_Weights.IMAGENET1K_V1", family="resnet"),
}
