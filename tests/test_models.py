"""Backbones follow torchvision's definitions (VGG, ResNet-18) under one contract."""

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
        if spec.name in ("vgg16", "vgg16_bn"):
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


def test_resnet18_through_the_contract_is_torchvisions_resnet18():
    """A colour task's network is torchvision's resnet18: the same keys, the same
    initial weights from the same seed, the same forward pass."""
    spec = BACKBONES["resnet18"]
    net = build_task_net(spec, 3, 5, seed=0, task_index=0).eval()
    torch.manual_seed(0 * 1009 + 0)
    ref = torchvision.models.resnet18(num_classes=5).eval()
    ours = {net.torchvision_key(k): v for k, v in net.state_dict().items()}
    theirs = ref.state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(net(x), ref(x))
    assert net.stage_channels == [64, 128, 256, 512] and len(net.stages) == 4
    names = conv_names(spec)
    assert names[:3] == ["conv1", "layer1.0.conv1", "layer1.0.conv2"] and len(names) == 20
    assert "layer2.0.downsample.0" in names and names == list(net.shareable_convs())
    convs = net.shareable_convs()
    assert convs["layer2.0.conv1"].stride == (2, 2) and convs["layer2.0.downsample.0"].padding == (0, 0)
    assert convs["conv1"] is net.stem and convs["conv1"].padding == (3, 3)


def test_resnet18_grayscale_stem_sums_the_imagenet_rgb_kernels(tmp_path, monkeypatch):
    """A weights file made here and put into torch hub's cache: no network."""
    from torchvision.models import ResNet18_Weights

    from hetmtl.models import base

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    base.imagenet_state.cache_clear()
    torch.manual_seed(5)
    fake = torchvision.models.resnet18(weights=None).state_dict()
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(fake, cache / ResNet18_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[1])
    try:
        gray = build_task_net(BACKBONES["resnet18"], 1, 10, seed=0, task_index=0, init="imagenet")
        colour = build_task_net(BACKBONES["resnet18"], 3, 10, seed=0, task_index=1, init="imagenet")
        scratch = build_task_net(BACKBONES["resnet18"], 1, 10, seed=0, task_index=0)
    finally:
        base.imagenet_state.cache_clear()
    sd = gray.state_dict()
    assert torch.equal(sd["stem.weight"], fake["conv1.weight"].sum(1, keepdim=True))
    assert torch.equal(colour.state_dict()["stem.weight"], fake["conv1.weight"])
    assert torch.equal(sd["stages.0.bn1.running_var"], fake["bn1.running_var"])
    assert torch.equal(sd["stages.1.layer2.0.downsample.0.weight"], fake["layer2.0.downsample.0.weight"])
    assert torch.equal(sd["head.2.weight"], scratch.state_dict()["head.2.weight"])  # own output layer


def test_resnet18_freeze_blocks_freezes_the_stem_and_the_first_layers(toy_tasks):
    """A block is a stage: freeze_blocks(1) freezes conv1, bn1 and layer1, (2) also layer2."""
    from hetmtl.methods import METHODS, TaskInfo

    spec = BACKBONES["resnet18"]
    mtal_cfg = {"rho": 0.4, "alpha": .5, "beta": .5, "warmup": 1, "share_every": 1, "start": "independent"}
    for k, expected in [(1, ("stem.", "stages.0.")), (2, ("stem.", "stages.0.", "stages.1."))]:
        m = METHODS["single_task"]([TaskInfo("a", 1, 3)], spec, {}, 0)
        m.freeze_blocks(k)
        frozen = {n for n, p in m.named_parameters() if not p.requires_grad}
        assert frozen == {n for n, _ in m.named_parameters() if n.startswith(tuple("nets.0." + e for e in expected))}
        mtal = METHODS["mtal"]([TaskInfo("a", 1, 3), TaskInfo("b", 1, 3)], spec, mtal_cfg, 0)
        mtal.freeze_blocks(k)
        layer = {name: i for i, name in enumerate(mtal.layer_names)}
        bank = {name: mtal.bank_w[mtal.task_bank[i][0]] for name, i in layer.items()}
        assert not bank["conv1"].requires_grad and not bank["layer1.1.conv2"].requires_grad
        assert bank["layer2.0.downsample.0"].requires_grad == (k < 2)
        assert bank["layer3.0.conv1"].requires_grad
        assert mtal.nets[0].stages[0].bn1.weight.requires_grad is False
        assert mtal.nets[0].head[2].weight.requires_grad
