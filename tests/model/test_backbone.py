"""Our ResNet trunks are torchvision's ResNets: same parameter names, same outputs; ImageNet weights load
from torchvision and timm files, .pth or .safetensors, and anything else is named."""

import pytest
import torch
import torchvision

from irralctl.errors import InputError
from irralctl.model.backbone import ResNetTrunk, load_visual_weights
from tests.fixtures.marks import fast_few


@pytest.mark.parametrize("depth", fast_few([18, 50], {18}))
def test_resnet_trunk_equals_torchvision(depth):
    torch.manual_seed(0)
    ref = getattr(torchvision.models, f"resnet{depth}")(weights=None).eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics, so eval mode is really exercised
        for m in ref.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
    state = {k: v for k, v in ref.state_dict().items() if not k.startswith("fc.")}
    state["conv1.weight"] = state["conv1.weight"].sum(dim=1, keepdim=True)  # grey input: RGB kernels summed
    ours = ResNetTrunk(depth).eval()
    ours.load_state_dict(state, strict=True)
    grey = torch.rand(2, 1, 96, 96)
    with torch.no_grad():
        s3, s4 = ours(grey)
        x = ref.maxpool(ref.relu(ref.bn1(ref.conv1(grey.expand(-1, 3, -1, -1)))))
        r3 = ref.layer3(ref.layer2(ref.layer1(x)))
        r4 = ref.layer4(r3)
    # Summing conv1's RGB kernels reorders float additions: equal up to float32 rounding of the scale.
    for a, b in ((s3, r3), (s4, r4)):
        assert (a - b).abs().max() <= 1e-5 * b.abs().max()
    assert s4.shape[-1] == ResNetTrunk.grid_size(96)
    # Parameter counts match torchvision's trunk (its fc and the two extra conv1 input channels aside).
    n_ref = sum(p.numel() for n, p in ref.named_parameters() if not n.startswith("fc.")) - 2 * 64 * 49
    assert sum(p.numel() for p in ours.parameters()) == n_ref


def _torchvision_state(depth: int = 18) -> dict:
    torch.manual_seed(1)
    return getattr(torchvision.models, f"resnet{depth}")(weights=None).state_dict()


def _features(trunk, grey):
    with torch.no_grad():
        return trunk.eval()(grey)[1]


@pytest.mark.parametrize("wrap", fast_few(["plain", "ddp_prefix", "timm_checkpoint"], {"plain"}))
def test_visual_weights_from_safetensors(tmp_path, wrap):
    """A .safetensors file loads like a .pth: torchvision names, or timm's (the same for its ResNets, with
    `fc` dropped), bare or under a DDP `module.` prefix."""
    from safetensors.torch import save_file

    state = _torchvision_state()
    reference = ResNetTrunk(18)
    load_visual_weights(reference, _save_pth(tmp_path / "w.pth", state))
    if wrap == "ddp_prefix":
        state = {f"module.{k}": v for k, v in state.items()}
    if wrap == "timm_checkpoint":  # timm's train.py: the state under "state_dict", saved with torch.save
        torch.save({"state_dict": state, "epoch": 3}, tmp_path / "timm.pth.tar")
        path = tmp_path / "timm.pth.tar"
    else:
        path = tmp_path / "w.safetensors"
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    ours = ResNetTrunk(18)
    load_visual_weights(ours, path)
    grey = torch.rand(1, 1, 64, 64)
    assert torch.equal(_features(ours, grey), _features(reference, grey))
    assert not torch.equal(_features(ResNetTrunk(18), grey), _features(reference, grey))  # the weights did change it


def _save_pth(path, state):
    torch.save(state, path)
    return path


def test_timm_resnet_loads_and_computes_what_timm_does(tmp_path):
    timm = pytest.importorskip("timm")
    from safetensors.torch import save_file

    ref = timm.create_model("resnet18", pretrained=False).eval()
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(tmp_path / "model.safetensors"))
    ours = ResNetTrunk(18)
    load_visual_weights(ours, tmp_path / "model.safetensors")
    grey = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        expected = ref.forward_features(grey.expand(-1, 3, -1, -1))
    got = _features(ours, grey)
    assert (got - expected).abs().max() <= 1e-5 * expected.abs().max()


@pytest.mark.parametrize("keys, message", [
    ({"conv1.0.weight": (32, 3, 3, 3), "fc.weight": (10, 2048)}, "timm ResNet-D"),
    ({"stem.conv.weight": (64, 3, 7, 7), "stages.0.blocks.0.conv1.weight": (64, 64, 1, 1), "head.fc.weight": (10, 8)},
     "timm ResNetV2 or other timm architecture"),
    ({"conv1.weight": (64, 3, 7, 7)}, "weights do not match the backbone: 99 missing"),
])
def test_other_architectures_are_named(tmp_path, keys, message):
    from safetensors.torch import save_file

    save_file({k: torch.zeros(shape) for k, shape in keys.items()}, str(tmp_path / "w.safetensors"))
    with pytest.raises(InputError, match=message) as info:
        load_visual_weights(ResNetTrunk(18), tmp_path / "w.safetensors")
    assert str(tmp_path / "w.safetensors") in info.value.message


def test_a_corrupted_safetensors_file_is_named_in_one_line(tmp_path):
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in _torchvision_state().items()}, str(tmp_path / "w.safetensors"))
    data = (tmp_path / "w.safetensors").read_bytes()
    (tmp_path / "w.safetensors").write_bytes(data[: len(data) // 3])   # a torn download
    with pytest.raises(InputError) as info:
        load_visual_weights(ResNetTrunk(18), tmp_path / "w.safetensors")
    assert info.value.message.startswith(f"{tmp_path / 'w.safetensors'}: unreadable safetensors file")
    assert "\n" not in info.value.message


def test_the_tiny_cnn_normalises_each_channel_on_its_own():
    """With `channel` a weak channel keeps its scale whatever its neighbours do; with `group` a
    strong channel of its group shrinks it (what hid thin findings from the head: docs/model.md)."""
    from irralctl.model.backbone import tiny_norm

    x = torch.randn(1, 16, 8, 8)
    loud = x.clone()
    loud[:, 1] *= 100.0                                   # channel 1 shares channel 0's group of 2
    per_channel, grouped = tiny_norm("channel", 16), tiny_norm("group", 16)
    assert per_channel.num_groups == 16 and grouped.num_groups == 8
    assert torch.allclose(per_channel(loud)[:, 0], per_channel(x)[:, 0], atol=1e-5)
    assert grouped(loud)[:, 0].abs().max() < 0.1 * grouped(x)[:, 0].abs().max()


def test_a_run_saved_before_the_option_rebuilds_with_groups():
    """A checkpoint's config without `tiny_norm` was trained with groups: the same parameter shapes
    with the other normalisation would load silently and compute something else."""
    from irralctl.model.config import ModelConfig
    from irralctl.model.visual import VisualEncoder
    from irralctl.utils.config import from_dict

    old = from_dict(ModelConfig, {"backbone": "tiny", "image_size": 32, "d_model": 32, "n_heads": 4}, saved=True)
    groups = {m.num_groups for m in VisualEncoder(old).backbone.modules() if isinstance(m, torch.nn.GroupNorm)}
    assert groups == {8}
    new = VisualEncoder(old.replace(tiny_norm="channel")).backbone
    assert all(m.num_groups == m.num_channels for m in new.modules() if isinstance(m, torch.nn.GroupNorm))
