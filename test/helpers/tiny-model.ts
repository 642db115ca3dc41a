/**
 * Builds a small but real ONNX model that honours the model contract (input `image` [N,1,S,S], output
 * `probabilities` [N,3,S,S]), so the pipeline can be tested end to end through onnxruntime-node without
 * the trained model. It segments by intensity, which is enough for the synthetic chests of the tests:
 *   lung_right = sigmoid(-k(x - tHi)) on image columns < S/2 (the patient's right lung is on the image's left)
 *   lung_left  = sigmoid(-k(x - tHi)) on image columns >= S/2
 *   opacity    = sigmoid(-k(x - tHi)) * sigmoid(k(x - tMid))   (mid-grey inside the dark lung fields)
 * x is the normalised input ((v - mean)/std). ONNX has no official JS writer, so the protobuf is written
 * with protobufjs from the few message types of onnx.proto that a graph needs.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as protobuf from 'protobufjs';
import type { ModelManifest } from '../../src/core/types';

const ONNX_PROTO = `
syntax = "proto2";
package onnx;
message AttributeProto { optional string name = 1; optional float f = 2; optional int64 i = 3; optional bytes s = 4;
  repeated float floats = 7; repeated int64 ints = 8; optional int32 type = 20; }
message NodeProto { repeated string input = 1; repeated string output = 2; optional string name = 3;
  optional string op_type = 4; repeated AttributeProto attribute = 5; }
message TensorProto { repeated int64 dims = 1; optional int32 data_type = 2; repeated float float_data = 4 [packed = true];
  repeated int64 int64_data = 7 [packed = true]; optional string name = 8; optional bytes raw_data = 9; }
message TensorShapeProto { message Dimension { optional int64 dim_value = 1; optional string dim_param = 2; }
  repeated Dimension dim = 1; }
message TypeProto { message Tensor { optional int32 elem_type = 1; optional TensorShapeProto shape = 2; }
  optional Tensor tensor_type = 1; }
message ValueInfoProto { optional string name = 1; optional TypeProto type = 2; }
message GraphProto { repeated NodeProto node = 1; optional string name = 2; repeated TensorProto initializer = 5;
  repeated ValueInfoProto input = 11; repeated ValueInfoProto output = 12; }
message OperatorSetIdProto { optional string domain = 1; optional int64 version = 2; }
message ModelProto { optional int64 ir_version = 1; optional string producer_name = 2; optional GraphProto graph = 7;
  repeated OperatorSetIdProto opset_import = 8; }
`;

const FLOAT = 1;
const INT64 = 7;

const floatTensor = (name: string, dims: number[], values: ArrayLike<number>) => ({
  name,
  dims,
  dataType: FLOAT,
  rawData: Buffer.from(new Float32Array(Array.from(values)).buffer),
});
const int64Tensor = (name: string, values: number[]) => ({ name, dims: [values.length], dataType: INT64, int64Data: values });
const node = (opType: string, input: string[], output: string[], attribute: object[] = []) => ({
  opType, input, output, name: output[0], attribute,
});
const valueInfo = (name: string, channels: number, S: number) => ({
  name,
  type: { tensorType: { elemType: FLOAT, shape: { dim: [{ dimParam: 'N' }, { dimValue: channels }, { dimValue: S }, { dimValue: S }] } } },
});

/** Serialises an ONNX graph (plain objects shaped like onnx.proto's GraphProto) at opset 13. */
export function encodeModel(graph: object): Buffer {
  const Model = protobuf.parse(ONNX_PROTO).root.lookupType('onnx.ModelProto');
  const msg = Model.create({ irVersion: 8, producerName: 'cxr-opacity tests', graph, opsetImport: [{ domain: '', version: 13 }] });
  return Buffer.from(Model.encode(msg).finish());
}

/** A graph computing Y = A x B for square float matrices of side n (the benchmark's matmul-rate probe). */
export function matmulModel(n: number): Buffer {
  const info = (name: string) => ({ name, type: { tensorType: { elemType: FLOAT, shape: { dim: [{ dimValue: n }, { dimValue: n }] } } } });
  return encodeModel({ name: 'matmul', input: [info('A'), info('B')], output: [info('Y')], node: [node('MatMul', ['A', 'B'], ['Y'])] });
}

export interface TinyModelOptions {
  size?: number;
  /** Raw [0,1] intensity under which a pixel counts as lung (air-filled or opaque lung). */
  lungBelow?: number;
  /** Raw [0,1] intensity above which a lung pixel counts as opacity. */
  opacityAbove?: number;
  version?: string;
}

/** Writes `<dir>/tiny.onnx` and `<dir>/tiny.json` and returns the manifest path. */
export function writeTinyModel(dir: string, opts: TinyModelOptions = {}): string {
  const S = opts.size ?? 64;
  const mean = 0.5;
  const std = 0.25;
  const k = 40; // steepness in normalised units
  const tHi = ((opts.lungBelow ?? 0.6) - mean) / std;
  const tMid = ((opts.opacityAbove ?? 0.3) - mean) / std;
  const side = new Float32Array(3 * S * S);
  for (let y = 0; y < S; y++) {
    for (let x = 0; x < S; x++) {
      side[y * S + x] = x < S / 2 ? 1 : 0;
      side[S * S + y * S + x] = x < S / 2 ? 0 : 1;
      side[2 * S * S + y * S + x] = 1;
    }
  }
  const graph = {
    name: 'tiny-intensity-segmenter',
    input: [valueInfo('image', 1, S)],
    output: [valueInfo('probabilities', 3, S)],
    initializer: [
      floatTensor('W', [4, 1, 1, 1], [-k, -k, -k, k]),
      floatTensor('B', [4], [k * tHi, k * tHi, k * tHi, -k * tMid]),
      floatTensor('side', [1, 3, S, S], side),
      floatTensor('gate', [1, 3, 1, 1], [0, 0, 1]),
      floatTensor('offset', [1, 3, 1, 1], [1, 1, 0]),
      int64Tensor('s0', [0]), int64Tensor('s3', [3]), int64Tensor('s4', [4]), int64Tensor('ax1', [1]),
    ],
    node: [
      node('Conv', ['image', 'W', 'B'], ['logits']),
      node('Sigmoid', ['logits'], ['s']),
      node('Slice', ['s', 's0', 's3', 'ax1'], ['dark']),
      node('Slice', ['s', 's3', 's4', 'ax1'], ['bright']),
      node('Mul', ['bright', 'gate'], ['bg']),
      node('Add', ['bg', 'offset'], ['factor']),
      node('Mul', ['dark', 'side'], ['sided']),
      node('Mul', ['sided', 'factor'], ['probabilities']),
    ],
  };
  const bytes = encodeModel(graph);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'tiny.onnx'), bytes);
  const manifest: ModelManifest = {
    name: 'tiny',
    version: opts.version ?? '0.0.0-test',
    file: 'tiny.onnx',
    sha256: createHash('sha256').update(bytes).digest('hex'),
    input: { name: 'image', size: S, resize: 'stretch', normalization: { mean, std } },
    output: { name: 'probabilities', channels: ['lung_right', 'lung_left', 'opacity'], activation: 'sigmoid' },
    thresholds: { lung_right: 0.5, lung_left: 0.5, opacity: 0.5 },
    training: { note: 'intensity rule built by test/helpers/tiny-model.ts; not trained' },
  };
  const manifestPath = join(dir, 'tiny.json');
  writeFileSync(manifestPath, JSON.stringify(manifest, null, 2));
  return manifestPath;
}
