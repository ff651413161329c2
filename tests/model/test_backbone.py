"""Our ResNet trunks are torchvision's ResNets: same parameter names, same outputs."""

import pytest
import torch
import torchvision

from irralctl.model.backbone import ResNetTrunk


@pytest.mark.parametrize("depth", [18, 50])
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
