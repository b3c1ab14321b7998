"""Image classifiers: torchvision ResNet-50 (v1.5) and MobileNetV2, unfused Conv + BN exports."""
from __future__ import annotations

from .builder import BATCH, GraphBuilder

# torchvision MobileNetV2 inverted residuals: expand ratio t, channels c, repeats n, stride s
MOBILENET_V2 = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2],
                [6, 96, 3, 1], [6, 160, 3, 2], [6, 320, 1, 1]]


def resnet(b: GraphBuilder, layers=(3, 4, 6, 3), width=64, image=224, classes=1000,
           calib=(64, 8)):
    """ResNet v1.5 with Bottleneck blocks (stride on the 3x3 conv), node names as torchvision."""
    x = b.input("input", "float32", [BATCH, 3, image, image])
    b.calibrate(x, min(calib[0], image), image, calib[1])
    x = b.relu(b.bn(b.conv(x, width, 7, 2, 3, local="conv1"), "bn1"), "relu")
    x = b.maxpool(x, 3, 2, 1, "maxpool")
    for li, n in enumerate(layers):
        planes = width * 2 ** li
        for bi in range(n):
            stride = 2 if li > 0 and bi == 0 else 1
            with b.scope(f"layer{li + 1}.{bi}"):
                x = _bottleneck(b, x, planes, stride, downsample=bi == 0)
    x = b.flatten(b.gap(x, "avgpool"), "flatten")
    y = b.gemm(x, width * 8 * 4, classes, "fc")
    b.output(y, "output", "float32", [BATCH, classes])


def _bottleneck(b: GraphBuilder, x, planes, stride, downsample):
    """conv1x1-bn-relu, conv3x3(stride)-bn-relu, conv1x1-bn, + identity/downsample, relu."""
    y = b.relu(b.bn(b.conv(x, planes, 1, local="conv1"), "bn1"), "relu")
    y = b.relu(b.bn(b.conv(y, planes, 3, stride, local="conv2"), "bn2"), "relu")
    y = b.bn(b.conv(y, planes * 4, 1, local="conv3"), "bn3")
    if downsample:
        x = b.bn(b.conv(x, planes * 4, 1, stride, 0, local="downsample.0", gain=1.0),
                 "downsample.1")
    return b.relu(b.add(y, x, "add"), "relu")


def mobilenetv2(b: GraphBuilder, settings=MOBILENET_V2, last=1280, image=224, classes=1000,
                calib=(96, 32)):
    """torchvision MobileNetV2: Conv-BN-ReLU6 (Clip), depthwise convs, inverted residuals."""
    x = b.input("input", "float32", [BATCH, 3, image, image])
    b.calibrate(x, min(calib[0], image), image, calib[1])
    x = _conv_bn_clip(b, x, 32, 3, 2, "features.0")
    idx, cin = 1, 32
    for t, c, n, s in settings:
        for i in range(n):
            stride = s if i == 0 else 1
            with b.scope(f"features.{idx}"):
                y = _inverted_residual(b, x, cin, c, stride, t)
            x = b.add(y, x, f"features.{idx}.add") if stride == 1 and cin == c else y
            idx, cin = idx + 1, c
    x = _conv_bn_clip(b, x, last, 1, 1, f"features.{idx}")
    x = b.flatten(b.gap(x, "avgpool"), "flatten")
    x = b.node("Dropout", [x, b.const(0.2)], "classifier.0")  # ratio only: inference form
    y = b.gemm(x, last, classes, "classifier.1", std=0.01)
    b.output(y, "output", "float32", [BATCH, classes])


def _conv_bn_clip(b: GraphBuilder, x, cout, k, stride, prefix, group=1):
    """Conv2dNormActivation: prefix.0 conv, prefix.1 bn, prefix.2 ReLU6."""
    with b.scope(prefix):
        y = b.bn(b.conv(x, cout, k, stride, group=group, local="0"), "1")
        return b.clip(y, 0.0, 6.0, "2")


def _inverted_residual(b: GraphBuilder, x, cin, cout, stride, t):
    """[expand 1x1] -> depthwise 3x3 -> linear 1x1 projection + BN (no activation)."""
    hidden, i = cin * t, 0
    if t != 1:
        x = _conv_bn_clip(b, x, hidden, 1, 1, "conv.0")
        i = 1
    x = _conv_bn_clip(b, x, hidden, 3, stride, f"conv.{i}", group=hidden)
    x = b.conv(x, cout, 1, local=f"conv.{i + 1}", gain=1.0)
    return b.bn(x, f"conv.{i + 2}")
