#!/bin/sh
# Installs the Python training stack from Debian packages (no pip, no network besides apt).
set -e
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends python3 python3-numpy python3-scipy python3-pil \
  python3-torch python3-torchvision python3-onnx libtcmalloc-minimal4
/usr/bin/python3 -c "import torch, torchvision, onnx, numpy, scipy, PIL; print('torch', torch.__version__, 'onnx', onnx.__version__)"
