"""Backbones follow torchvision's VGG definitions."""

from __future__ import annotations

import torch
import torchvision

from hetmtl.models import BACKBONES, build_task_net, conv_names


def test_vgg16_is_torchvisions_vgg16():
    net = build_task_net(BACKBONES["vgg16"], 3, 1000, seed=0, task_index=0)
    ours = net.state_dict()
    ref = torchvision.models.vgg16(weights=None).state_dict()
    assert {net.torchvision_key(k): v.shape for k, v in ours.items()} == {k: v.shape for k, v in ref.items()}
    assert len(conv_names(BACKBONES["vgg16"])) == 13 and conv_names(BACKBONES["vgg16"])[-1] == "conv5_3"


def test_first_conv_takes_the_native_channel_count():
    for spec in BACKBONES.values():
        if spec.name in ("vgg16", "vgg16_bn", "resnet18"):
            continue
        gray = build_task_net(spec, 1, 7, seed=0, task_index=0)
        colour = build_task_net(spec, 3, 5, seed=0, task_index=1)
        assert gray.stem.in_channels == 1 and colour.stem.in_channels == 3
        assert gray(torch.zeros(2, 1, 32, 32)).shape == (2, 7)
        assert colour(torch.zeros(2, 3, 32, 32)).shape == (2, 5)


def test_same_seed_and_task_same_initialisation():
    spec = BACKBONES["vgg_small"]
    a = build_task_net(spec, 1, 4, seed=3, task_index=2).state_dict()
    b = build_task_net(spec, 1, 4, seed=3, task_index=2).state_dict()
    c = build_task_net(spec, 1, 4, seed=3, task_index=1).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["stem.weight"], c["stem.weight"])


def test_our_make_layers_is_torchvisions():
    """Same configuration, same modules, same random draws as torchvision's."""
    from torchvision.models import vgg as tv_vgg

    from hetmtl.models import vgg

    assert list(vgg.VGG16_CFG) == tv_vgg.cfgs["D"]
    for cfg, bn in [(tv_vgg.cfgs["D"], False), (tv_vgg.cfgs["D"], True), ([8, "M", 16, "M"], True)]:
        torch.manual_seed(0)
        ours = vgg.make_layers(list(cfg), batch_norm=bn)
        torch.manual_seed(0)
        theirs = tv_vgg.make_layers(list(cfg), batch_norm=bn)
        assert [type(m) for m in ours] == [type(m) for m in theirs]
        a, b = ours.state_dict(), theirs.state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
