"""Backbones: VGG definitions from torchvision, per-task first conv and head."""

from hetmtl.models.vgg import BACKBONES, BackboneSpec, TaskNet, build_task_net, conv_layers, conv_names

__all__ = ["BACKBONES", "BackboneSpec", "TaskNet", "build_task_net", "conv_layers", "conv_names"]
