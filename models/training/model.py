"""U-Net with a torchvision ResNet18 encoder (1-channel conv1) and a light decoder."""
import torch
import torch.nn as nn
import torchvision


def conv_bn_relu(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class DecoderBlock(nn.Module):
    def __init__(self, cin, cskip, cout):
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode='nearest')
        self.conv1 = conv_bn_relu(cin + cskip, cout)
        self.conv2 = conv_bn_relu(cout, cout)

    def forward(self, x, skip=None):
        x = self.up(x)
        if skip is not None:
            x = torch.cat([x, skip], 1)
        return self.conv2(self.conv1(x))


class UNetR18(nn.Module):
    """Input [N,1,S,S] normalised image; forward returns logits [N,C,S,S]: lung_right, lung_left, opacity and, in
    training only (C=4), a second opacity channel supervised by the coarse covidqu labels (source-conditioned head;
    export keeps the first three)."""

    def __init__(self, dec=(128, 64, 32, 16), out_channels=3):
        super().__init__()
        r = torchvision.models.resnet18(weights=None)
        r.conv1 = nn.Conv2d(1, 64, 7, 2, 3, bias=False)
        self.encoder = nn.ModuleDict(dict(conv1=r.conv1, bn1=r.bn1, layer1=r.layer1, layer2=r.layer2,
                                          layer3=r.layer3, layer4=r.layer4))
        self.pool = nn.MaxPool2d(3, 2, 1)
        d1, d2, d3, d4 = dec
        self.dec1 = DecoderBlock(512, 256, d1)   # /16
        self.dec2 = DecoderBlock(d1, 128, d2)    # /8
        self.dec3 = DecoderBlock(d2, 64, d3)     # /4
        self.dec4 = DecoderBlock(d3, 64, d4)     # /2
        self.dec5 = DecoderBlock(d4, 0, d4)      # /1
        self.head = nn.Conv2d(d4, out_channels, 3, padding=1)

    def forward(self, x):
        e = self.encoder
        x0 = torch.relu(e['bn1'](e['conv1'](x)))   # /2, 64
        x1 = e['layer1'](self.pool(x0))            # /4, 64
        x2 = e['layer2'](x1)                       # /8, 128
        x3 = e['layer3'](x2)                       # /16, 256
        x4 = e['layer4'](x3)                       # /32, 512
        y = self.dec1(x4, x3)
        y = self.dec2(y, x2)
        y = self.dec3(y, x1)
        y = self.dec4(y, x0)
        y = self.dec5(y)
        return self.head(y)


class WithSigmoid(nn.Module):
    """The exported graph: probabilities = sigmoid(logits)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, image):
        return torch.sigmoid(self.net(image))


def load_onnx_weights(model, onnx_path):
    """Loads a model's weights from an exported .onnx (initializers are named after state_dict keys, fp16 -> fp32).
    A head with more output channels than the file's gets the file's channels first; each extra channel starts as a
    copy of the file's last channel (opacity). Returns a short summary."""
    import numpy as np
    import onnx
    from onnx import numpy_helper
    want = model.state_dict()
    sd = {}
    for init in onnx.load(onnx_path).graph.initializer:
        name = init.name[4:] if init.name.startswith('net.') else init.name  # exported graph wraps the net
        if name not in want:
            continue
        t = torch.from_numpy(numpy_helper.to_array(init).astype(np.float32).copy()).to(want[name].dtype)
        if t.shape != want[name].shape and name.startswith('head.'):
            n = t.shape[0]
            t = torch.cat([t] + [t[n - 1:n]] * (want[name].shape[0] - n), 0)
        sd[name] = t
    missing = [k for k in want if k not in sd and not k.endswith('num_batches_tracked')]
    assert not missing, f'missing in {onnx_path}: {missing[:5]}'
    model.load_state_dict(sd, strict=False)
    return f'{len(sd)} tensors'
