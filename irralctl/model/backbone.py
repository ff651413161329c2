"""CNN backbones of the visual encoder: ResNet-18/50/101, and a tiny CNN for CPU runs and tests.

Every backbone maps a batch of single-channel images (M, 1, S, S) to its stage-3 and stage-4
feature grids. Radiographs are greyscale: instead of repeating the grey channel three times
(what R2Gen does), the first convolution takes one channel, and ImageNet weights are converted by
summing the RGB kernels of `conv1` (identical output for a grey image repeated over R, G and B,
with a third of the input traffic and first-layer compute).

No weights are downloaded: `load_visual_weights` reads a torchvision or timm ResNet state_dict the
user supplies (`--visual-weights FILE`: e.g. `resnet101-cd907fc2.pth` from torchvision's release page,
or timm's `model.safetensors`, fetched separately), as a torch file or a safetensors file.

The ResNets are written here rather than taken from `torchvision.models`, with torchvision's
module names and initialisation so its state_dicts load unchanged (a test checks the outputs are
identical): importing torchvision costs about 1.3 s (it pulls in torch's compiler stack), which
alone would break the 3-second budget for generating one report on a CPU.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from irralctl.errors import InputError

log = logging.getLogger(__name__)


class BasicBlock(nn.Module):
    """ResNet-18/34 block: two 3x3 convolutions (torchvision's names and layout)."""

    expansion = 1

    def __init__(self, c_in: int, planes: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(c_in, planes, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(y)) + identity)


class Bottleneck(nn.Module):
    """ResNet-50/101 block: 1x1, 3x3 (carrying the stride, "ResNet v1.5"), 1x1 expanding by 4."""

    expansion = 4

    def __init__(self, c_in: int, planes: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(c_in, planes * 4, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        return self.relu(self.bn3(self.conv3(y)) + identity)


def _downsample(c_in: int, c_out: int, stride: int) -> nn.Sequential | None:
    if stride == 1 and c_in == c_out:
        return None
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))


RESNETS = {18: (BasicBlock, (2, 2, 2, 2)), 50: (Bottleneck, (3, 4, 6, 3)), 101: (Bottleneck, (3, 4, 23, 3))}


class ResNetTrunk(nn.Module):
    """A ResNet without its pooling and classifier, returning the stage-3 and stage-4 grids.

    Submodules carry torchvision's names (`conv1`, `bn1`, `layer1`..`layer4`, `downsample.0/1`) so a
    torchvision state_dict loads as is, `fc.*` aside; `conv1` takes one (grey) channel.
    """

    def __init__(self, depth: int):
        super().__init__()
        block, counts = RESNETS[depth]
        self.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        c_in, layers = 64, []
        for k, (planes, n) in enumerate(zip((64, 128, 256, 512), counts)):
            blocks = []
            for b in range(n):
                blocks.append(block(c_in, planes, 2 if (b == 0 and k > 0) else 1))
                c_in = planes * block.expansion
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.channels = (256 * block.expansion, 512 * block.expansion)  # stage 3, stage 4
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @staticmethod
    def grid_size(image_size: int) -> int:
        """Side of the stage-4 grid: five stride-2 steps (conv1, maxpool, layer2..4), each ceil(x / 2)."""
        s = image_size
        for _ in range(5):
            s = (s + 1) // 2
        return s

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer2(self.layer1(x))
        s3 = self.layer3(x)   # (M, C3, 2h, 2w), stride 16
        s4 = self.layer4(s3)  # (M, C4, h, w), stride 32
        return s3, s4


def tiny_norm(kind: str, channels: int) -> nn.GroupNorm:
    """The tiny CNN's normalisation: per sample, never over the batch (BatchNorm's statistics would
    depend on how a batch is split over processes, so one- and two-process runs would differ).

    `channel` normalises each channel over its own image (one group per channel). `group` pools
    8 groups of channels, and a channel that answers to something thin (a tube, a pleural edge) is
    then scaled by the statistics of its group's strong channels (the heart, an effusion): in a
    head-only probe on standard phantoms the head with groups never found support devices or a
    pneumothorax in 10 epochs, and found both with one channel per group (docs/model.md).
    """
    return nn.GroupNorm(channels if kind == "channel" else min(8, channels), channels)


class _TinyBlock(nn.Module):
    """Residual block of the tiny CNN."""

    def __init__(self, c_in: int, c_out: int, stride: int, norm: str):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.norm1 = tiny_norm(norm, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.norm2 = tiny_norm(norm, c_out)
        self.skip = (nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), tiny_norm(norm, c_out))
                     if stride != 1 or c_in != c_out else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.norm1(self.conv1(x)))
        return F.relu(self.norm2(self.conv2(y)) + self.skip(x))


class TinyCNN(nn.Module):
    """A 4-stage residual CNN (widths w, 2w, 4w, 8w; total stride 16) for CPU runs and tests."""

    def __init__(self, width: int = 16, norm: str = "channel"):
        super().__init__()
        w = width
        self.stem = nn.Sequential(nn.Conv2d(1, w, 3, 2, 1, bias=False), tiny_norm(norm, w), nn.ReLU())
        self.stage1 = _TinyBlock(w, w, 1, norm)
        self.stage2 = _TinyBlock(w, 2 * w, 2, norm)
        self.stage3 = _TinyBlock(2 * w, 4 * w, 2, norm)
        self.stage4 = _TinyBlock(4 * w, 8 * w, 2, norm)
        self.channels = (4 * w, 8 * w)

    @staticmethod
    def grid_size(image_size: int) -> int:
        s = image_size
        for _ in range(4):
            s = (s + 1) // 2
        return s

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.stage2(self.stage1(self.stem(x)))
        s3 = self.stage3(x)   # (M, 4w, 2h, 2w), stride 8
        s4 = self.stage4(s3)  # (M, 8w, h, w), stride 16
        return s3, s4


def build_backbone(name: str, tiny_width: int = 16, norm: str = "channel") -> ResNetTrunk | TinyCNN:
    """`norm`: the tiny CNN's normalisation (`tiny_norm`); the ResNets keep torchvision's BatchNorm."""
    if name == "tiny":
        return TinyCNN(tiny_width, norm)
    return ResNetTrunk(int(name.removeprefix("resnet")))


# Classifier heads: torchvision's and timm's ResNets call theirs `fc`; other timm models `head` or
# `head.fc`. None belongs to a feature extractor.
_HEADS = ("fc.", "head.", "classifier.")
# Wrappers around a state_dict in training checkpoints (timm's train.py, Lightning, DDP).
_WRAPPERS = ("state_dict", "model", "state_dict_ema")


def _read_state(path: Path) -> dict:
    """A state_dict from a torch file (`torch.load`, weights only) or a safetensors file."""
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(path, device="cpu")
        except (SafetensorError, OSError, ValueError, RuntimeError) as e:
            raise InputError(f"unreadable safetensors file ({type(e).__name__}: {e})", path=path) from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise InputError(f"cannot read a state_dict from this file ({type(e).__name__}: {e})", path=path,
                         hint="give a torchvision .pth, a timm .pth/.bin, or a .safetensors file") from None
    for key in _WRAPPERS:
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict):
        raise InputError("not a state_dict (expected a mapping of parameter names to tensors)", path=path)
    return state


def _torchvision_names(state: dict, path: Path) -> dict:
    """`state` with torchvision ResNet names: wrapper prefixes and classifier heads dropped.

    timm's ResNets (`resnet50`, `resnet101.a1h_in1k`, `resnet101.tv_in1k`, ...) use torchvision's
    names already; its ResNet-D ("d" models: deep stem `conv1.0..6`, average-pool shortcut
    `downsample.1/2`) and ResNetV2 (`stem.conv`, `stages.N.blocks`) are other architectures, and
    are named as such instead of failing on a list of keys.
    """
    for prefix in ("module.", "model."):
        if state and all(k.startswith(prefix) for k in state):
            state = {k.removeprefix(prefix): v for k, v in state.items()}
    if "conv1.0.weight" in state:
        raise InputError("a timm ResNet-D (deep stem conv1.0-6, average-pool shortcuts: resnet50d, resnet101d, ...): "
                         "another architecture than torchvision's ResNet", path=path,
                         hint="give the weights of a plain ResNet (torchvision's, or timm's resnet50 / resnet101)")
    if "stem.conv.weight" in state or any(k.startswith("stages.") for k in state):
        raise InputError("a timm ResNetV2 or other timm architecture (stem.conv, stages.N.blocks), not a ResNet with "
                         "torchvision's layout", path=path,
                         hint="give the weights of a plain ResNet (torchvision's, or timm's resnet50 / resnet101)")
    return {k: v for k, v in state.items() if not k.startswith(_HEADS)}


def load_visual_weights(backbone: nn.Module, path: str | Path) -> None:
    """Load ImageNet ResNet weights into `backbone`, in place: a torchvision or timm state_dict, from a
    torch file (`.pth`, `.bin`, `.pt`) or a `.safetensors` file.

    Classifier heads (`fc.*`, `head.*`) are dropped; `conv1.weight` (64, 3, 7, 7) is summed over RGB
    to (64, 1, 7, 7). Any other missing or unexpected key is an error: a silent partial load trains
    from scratch.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("visual weights file not found", path=path)
    if not isinstance(backbone, ResNetTrunk):
        raise InputError("visual weights apply to the resnet backbones only, not 'tiny'", path=path)
    state = _torchvision_names(_read_state(path), path)
    w = state.get("conv1.weight")
    if isinstance(w, torch.Tensor) and w.ndim == 4 and w.shape[1] == 3:
        state["conv1.weight"] = w.sum(dim=1, keepdim=True)  # (64, 3, 7, 7) -> (64, 1, 7, 7)
    try:
        result = backbone.load_state_dict(state, strict=False)
    except RuntimeError as e:
        first = str(e).split("\n")[1:3]
        raise InputError("weights do not fit this backbone: " + " ".join(s.strip() for s in first), path=path,
                         hint="give the state_dict of the same ResNet depth as --backbone") from None
    if result.missing_keys or result.unexpected_keys:
        parts = []
        if result.missing_keys:
            parts.append(f"{len(result.missing_keys)} missing (e.g. {', '.join(result.missing_keys[:3])})")
        if result.unexpected_keys:
            parts.append(f"{len(result.unexpected_keys)} unexpected (e.g. {', '.join(result.unexpected_keys[:3])})")
        raise InputError("weights do not match the backbone: " + "; ".join(parts), path=path,
                         hint="give a torchvision or timm ResNet state_dict of the same depth as --backbone")
    log.info("loaded visual weights from %s (%d tensors)", path, len(state))
