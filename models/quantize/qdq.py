"""Graph surgery for the int8 model (steps 2 and 4 of `npm run quantize`; see models/quantize/README.md).

  /usr/bin/python3 models/quantize/qdq.py calib-graph --folded out/quantize/folded.onnx --out out/quantize/calib.onnx
      The folded fp32 graph (fold.ts) with every activation tensor as an extra graph output, for calibrate.ts stats.

  /usr/bin/python3 models/quantize/qdq.py quantize --folded out/quantize/folded.onnx --stats out/quantize/stats.json \
      --method mse|minmax|p99.99 [--weight-bits 7|8] [--fp32 conv1,head] --out models/cxr-unet-r18-int8.onnx
      QDQ model:
      - weights: per-output-channel symmetric int8 (DequantizeLinear axis=0 on an int8 initializer), range
        +-(2^(bits-1)-1); 7 bits by default, so that u8 x s8 products of neighbouring taps can never saturate the
        16-bit intermediate of AVX2/AVX-512 kernels without VNNI (onnxruntime's reduce_range);
      - biases: int32 with scale = input scale x weight scale (what QLinearConv takes);
      - activations: per-tensor uint8 QuantizeLinear -> DequantizeLinear after the node that makes them; a Relu that
        follows a Conv or an Add is dropped and its output quantised with zero point 0 (the Q clamps at 0, which is
        the Relu); MaxPool and Resize (nearest) outputs reuse their input's scale (onnxruntime runs them on uint8);
      - the head Conv (its weights and output, the logits) and the Sigmoid stay fp32, and any Conv named in --fp32 keeps fp32
        weights and output.
      onnxruntime fuses DQ -> Conv -> Q into QLinearConv, DQ,DQ -> Add -> Q into QLinearAdd and Concat into
      QLinearConcat when the session is created (calibrate's optimised graph shows it; see README).
"""
import argparse
import hashlib
import json
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# Tensors from nodes of these types are quantised (the output of the last Conv, the logits, is not).
QUANT_OPS = {'Conv', 'Add', 'Concat', 'MaxPool', 'Resize'}
SAME_SCALE_OPS = {'MaxPool', 'Resize'}


def clean_opsets(model):
    keep = [o for o in model.opset_import if o.domain in ('', 'ai.onnx')]
    del model.opset_import[:]
    model.opset_import.extend(keep)


def calib_graph(args):
    m = onnx.load(args.folded)
    clean_opsets(m)
    have = {o.name for o in m.graph.output}
    for n in m.graph.node:
        for o in n.output:
            if o and o not in have:
                m.graph.output.append(helper.make_tensor_value_info(o, TensorProto.FLOAT, None))
                have.add(o)
    onnx.save(m, args.out)
    print(f'calib graph: {len(have) - 1} extra outputs -> {args.out}')


def clip_range(st, method, nonneg):
    """(lo, hi) to quantise a tensor to, from its calibration min/max and histogram."""
    lo, hi = st['min'], st['max']
    if nonneg:
        lo = 0.0
    if method == 'minmax':
        return min(lo, 0.0), max(hi, 0.0)
    h = np.asarray(st['hist'], dtype=np.float64)
    edges = np.linspace(st['min'], st['max'], len(h) + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    if method.startswith('p'):
        q = float(method[1:]) / 100
        c = np.cumsum(h) / h.sum()
        hi_q = centres[min(len(h) - 1, np.searchsorted(c, q))]
        lo_q = 0.0 if nonneg else centres[np.searchsorted(c, 1 - q)]
        return min(lo_q, 0.0), max(hi_q, 0.0)
    if method == 'mse':
        # Expected squared error of uint8 quantisation (rounding inside the range, clipping outside) over the
        # calibration histogram, for the range shrunk by a factor f in [0.3, 1]; the best f wins.
        best = None
        for f in np.linspace(0.3, 1.0, 141):
            a, b = min(lo * f, 0.0), max(hi * f, 0.0)
            s = (b - a) / 255 or 1e-8
            zp = np.clip(np.round(-a / s), 0, 255)
            q = np.clip(np.round(centres / s) + zp, 0, 255)
            err = float(np.sum(h * (centres - (q - zp) * s) ** 2))
            if best is None or err < best[0]:
                best = (err, a, b)
        return best[1], best[2]
    raise ValueError(f'unknown method {method}')


def uint8_params(lo, hi):
    s = (hi - lo) / 255
    if s <= 0:
        s = 1e-8
    zp = int(np.clip(np.round(-lo / s), 0, 255))
    return np.float32(s), np.uint8(zp)


def quantize(args):
    m = onnx.load(args.folded)
    clean_opsets(m)
    g = m.graph
    stats = json.load(open(args.stats))['tensors']
    inits = {i.name: i for i in g.initializer}
    nodes = list(g.node)
    consumers = {}
    for n in nodes:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    producer = {o: n for n in nodes for o in n.output}
    fp32_convs = set(x for x in (args.fp32 or '').split(',') if x)

    # Drop each Relu after a Conv/Add that nothing else reads: the producer writes the Relu's output name and the
    # tensor is quantised with the Relu output's range (lo = 0).
    relu_out = set()
    keep = []
    for n in nodes:
        if n.op_type == 'Relu':
            p = producer.get(n.input[0])
            if p is not None and p.op_type in ('Conv', 'Add') and len(consumers[n.input[0]]) == 1 and \
                    not (p.op_type == 'Conv' and conv_key(p) in fp32_convs):
                p.output[0] = n.output[0]
                relu_out.add(n.output[0])
                continue
        keep.append(n)
    nodes = keep
    producer = {o: n for n in nodes for o in n.output}
    head = [n for n in nodes if n.op_type == 'Conv' and any(c.op_type == 'Sigmoid' for c in nodes if n.output[0] in c.input)]
    assert len(head) == 1
    head = head[0]

    # Activation quantisation parameters, in graph order (a MaxPool/Resize output takes its input's).
    params = {}
    graph_input = g.input[0].name
    order = [graph_input] + [o for n in nodes for o in n.output]
    for t in order:
        p = producer.get(t)
        if t != graph_input:
            if p.op_type not in QUANT_OPS or p is head or (p.op_type == 'Conv' and conv_key(p) in fp32_convs):
                continue
            if p.op_type in SAME_SCALE_OPS:
                if p.input[0] in params:
                    params[t] = params[p.input[0]]
                continue
        if t == graph_input:
            # The normalised image: (v - mean) / std for v in [0, 1], whatever the calibration images held.
            nrm = json.load(open(args.manifest))['input']['normalization']
            params[t] = uint8_params((0 - nrm['mean']) / nrm['std'], (1 - nrm['mean']) / nrm['std'])
            continue
        st = stats[t] if t in stats else None
        if st is None:
            raise KeyError(f'no calibration statistics for {t}')
        nonneg = t in relu_out or st['min'] >= 0
        params[t] = uint8_params(*clip_range(st, args.method, nonneg))

    new_nodes = []
    new_inits = []
    renamed = {}  # fp32 tensor -> its dequantised name

    def qdq(t):
        s, zp = params[t]
        sn, zn = f'{t}_scale', f'{t}_zp'
        new_inits.append(numpy_helper.from_array(np.array(s, dtype=np.float32), sn))
        new_inits.append(numpy_helper.from_array(np.array(zp, dtype=np.uint8), zn))
        new_nodes.append(helper.make_node('QuantizeLinear', [t, sn, zn], [f'{t}_q'], name=f'{t}_Q'))
        new_nodes.append(helper.make_node('DequantizeLinear', [f'{t}_q', sn, zn], [f'{t}_dq'], name=f'{t}_DQ'))
        renamed[t] = f'{t}_dq'

    if graph_input in params:
        qdq(graph_input)
    qmax = 2 ** (args.weight_bits - 1) - 1
    wstats = []
    for n in nodes:
        ins = list(n.input)
        # The head's output is not quantised, so onnxruntime cannot fuse it into QLinearConv: its weights stay fp32.
        quant_conv = n.op_type == 'Conv' and n is not head and conv_key(n) not in fp32_convs and ins[0] in params
        for k, i in enumerate(ins):
            if i in renamed:
                n.input[k] = renamed[i]
        if quant_conv:
            w = numpy_helper.to_array(inits[ins[1]]).astype(np.float32)
            amax = np.abs(w.reshape(w.shape[0], -1)).max(axis=1)
            ws = np.where(amax > 0, amax / qmax, 1.0).astype(np.float32)
            wq = np.clip(np.round(w / ws.reshape(-1, 1, 1, 1)), -qmax, qmax).astype(np.int8)
            err = np.abs(wq * ws.reshape(-1, 1, 1, 1) - w).max()
            wstats.append(err)
            base = ins[1]
            new_inits += [numpy_helper.from_array(wq, f'{base}_int8'), numpy_helper.from_array(ws, f'{base}_wscale'),
                          numpy_helper.from_array(np.zeros(len(ws), np.int8), f'{base}_wzp')]
            new_nodes.append(helper.make_node('DequantizeLinear', [f'{base}_int8', f'{base}_wscale', f'{base}_wzp'],
                                              [f'{base}_dqw'], name=f'{base}_DQW', axis=0))
            n.input[1] = f'{base}_dqw'
            if len(ins) > 2 and ins[2]:
                b = numpy_helper.to_array(inits[ins[2]]).astype(np.float64)
                bs = (np.float64(params[ins[0]][0]) * ws.astype(np.float64)).astype(np.float32)
                bq = np.round(b / bs).astype(np.int32)
                bb = ins[2]
                new_inits += [numpy_helper.from_array(bq, f'{bb}_int32'), numpy_helper.from_array(bs, f'{bb}_bscale'),
                              numpy_helper.from_array(np.zeros(len(bs), np.int32), f'{bb}_bzp')]
                new_nodes.append(helper.make_node('DequantizeLinear', [f'{bb}_int32', f'{bb}_bscale', f'{bb}_bzp'],
                                                  [f'{bb}_dqb'], name=f'{bb}_DQB', axis=0))
                n.input[2] = f'{bb}_dqb'
        new_nodes.append(n)
        for o in n.output:
            if o in params:
                qdq(o)
    used = {i for n in new_nodes for i in n.input}
    new_inits += [i for i in g.initializer if i.name in used]
    del g.node[:]
    g.node.extend(new_nodes)
    del g.initializer[:]
    g.initializer.extend(new_inits)
    del g.value_info[:]
    m.producer_name = 'cxr-opacity models/quantize/qdq.py'
    meta = {'quantization': json.dumps({'method': args.method, 'weight_bits': args.weight_bits, 'activations': 'uint8 per tensor',
                                         'weights': 'int8 symmetric per output channel', 'fp32_convs': sorted(fp32_convs),
                                         'calibration_images': json.load(open(args.stats))['images']})}
    del m.metadata_props[:]
    for k, v in meta.items():
        m.metadata_props.append(onnx.StringStringEntryProto(key=k, value=v))
    onnx.checker.check_model(m)
    onnx.save(m, args.out)
    n_conv = sum(1 for n in new_nodes if n.op_type == 'Conv')
    n_wq = sum(1 for n in new_nodes if n.op_type == 'DequantizeLinear' and n.name.endswith('_DQW'))
    print(f'{args.out}: {n_wq}/{n_conv} Convs with int8 weights, {len(params)} activations quantised '
          f'({args.method}, {args.weight_bits}-bit weights), max weight rounding error {max(wstats):.2e}')


def write_manifest(args):
    """The int8 model's manifest: the fp32 model's contract (input, output, thresholds, guard, training provenance)
    with its own file, sha256 and version, and how it was quantised."""
    src = json.load(open(args.manifest))
    onnx_bytes = open(args.model, 'rb').read()
    fp32_file = os.path.join(os.path.dirname(args.manifest), src['file'])
    m = dict(src)
    m['version'] = f"{src['version']}-int8"
    m['file'] = os.path.basename(args.model)
    m['sha256'] = hashlib.sha256(onnx_bytes).hexdigest()
    model = onnx.load_from_string(onnx_bytes)
    q = json.loads({p.key: p.value for p in model.metadata_props}['quantization'])
    inputs = json.load(open(args.inputs))
    m['quantization'] = {
        'from': {'file': src['file'], 'version': src['version'], 'sha256': hashlib.sha256(open(fp32_file, 'rb').read()).hexdigest()},
        'format': 'ONNX QDQ (QuantizeLinear/DequantizeLinear); onnxruntime fuses it into QLinearConv/QLinearAdd/QLinearConcat',
        'weights': f"int8, symmetric, per output channel, {q['weight_bits']}-bit range (+-{2 ** (q['weight_bits'] - 1) - 1}: no u8 x s8 saturation on AVX2 without VNNI)",
        'activations': 'uint8, per tensor (Relu outputs zero point 0); MaxPool/Resize keep their input scale',
        'fp32': ['the head Conv (logits) and the Sigmoid'] + q['fp32_convs'],
        'calibration': {
            'method': q['method'],
            'images': q['calibration_images'],
            'from': 'training split only (models/training/splits.json train; no external22 patient), preprocessed by the production path',
            'sources': {k: sum(1 for x in inputs['calib'] if x.startswith(k + '/')) for k in sorted({x.split('/')[0] for x in inputs['calib']})},
        },
        'tooling': 'models/quantize (npm run quantize); evaluation in models/quantize/README.md',
    }
    if args.eval:
        e = json.load(open(args.eval))['summary']
        pick = lambda x: {'value': x.get('mean', x.get('value')), 'ci95': x['ci95']}
        m['quantization']['evaluation'] = {
            'file': os.path.relpath(args.eval, os.path.dirname(args.out) or '.'), 'data': e['data'], 'model': e['model'],
            'lungDice': pick(e['lungDice']), 'opacityDicePooled': pick(e['opacityDicePooled']),
            'opacityPctMae': pick(e['opacityPctMae']), 'extentMaeVsManualMasks': pick(e['extentMaeVsManualMasks']),
            'extentMaeVsRadiologists': pick(e['radiologists']['predExtentMae']),
        }
    with open(args.out, 'w') as f:
        f.write(json.dumps(m, indent=2) + '\n')
    print(f"{args.out}: {m['name']}@{m['version']} sha256 {m['sha256']}")


def conv_key(n):
    """Short name of a Conv for --fp32: 'conv1' (the stem), 'head', or the module path like 'dec5.conv2'."""
    w = n.input[1]
    for pre in ('ConvBnFusion_W_net.', 'net.'):
        if w.startswith(pre):
            w = w[len(pre):]
    w = w.replace('.weight__fp32', '').replace('encoder.', '')
    return w.replace('.0', '') if w.startswith('dec') else w


if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest='cmd', required=True)
    a = sub.add_parser('calib-graph')
    a.add_argument('--folded', default='out/quantize/folded.onnx')
    a.add_argument('--out', default='out/quantize/calib.onnx')
    b = sub.add_parser('quantize')
    b.add_argument('--folded', default='out/quantize/folded.onnx')
    b.add_argument('--stats', default='out/quantize/stats.json')
    b.add_argument('--manifest', default='models/cxr-unet-r18.json', help="the fp32 model's manifest (input normalisation)")
    b.add_argument('--method', default='mse')
    b.add_argument('--weight-bits', type=int, default=7)
    b.add_argument('--fp32', default='', help='comma-separated Convs kept fp32 (conv1, head, layer1.0.conv1, dec5.conv2, ...)')
    b.add_argument('--out', required=True)
    c = sub.add_parser('manifest')
    c.add_argument('--manifest', default='models/cxr-unet-r18.json')
    c.add_argument('--model', default='models/cxr-unet-r18-int8.onnx')
    c.add_argument('--inputs', default='out/quantize/inputs.json')
    c.add_argument('--eval', help='an eval json of the int8 model on external22 to record (optional)')
    c.add_argument('--out', default='models/cxr-unet-r18-int8.json')
    a2 = ap.parse_args()
    {'calib-graph': calib_graph, 'quantize': quantize, 'manifest': write_manifest}[a2.cmd](a2)
