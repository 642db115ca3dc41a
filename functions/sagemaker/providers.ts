/**
 * Which onnxruntime execution providers the serving container asks for. CUDA is used when USE_CUDA=1,
 * or when USE_CUDA is unset and both an NVIDIA device and onnxruntime-node's CUDA provider library are
 * present; USE_CUDA=0 forces the CPU. CPU always stays in the list as the fallback for operators the
 * CUDA provider lacks.
 */
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';

export interface CudaProbe {
  /** An NVIDIA GPU is visible to this process. */
  hasDevice(): boolean;
  /** onnxruntime-node's libonnxruntime_providers_cuda.so is installed (see the Dockerfile's ORT_INSTALL). */
  hasCudaProvider(): boolean;
}

export const systemCudaProbe: CudaProbe = {
  hasDevice: () => existsSync('/proc/driver/nvidia/version') || existsSync('/dev/nvidia0'),
  hasCudaProvider: () => {
    try {
      const binRoot = join(dirname(require.resolve('onnxruntime-node/package.json')), 'bin');
      const walk = (dir: string): boolean => readdirSync(dir, { withFileTypes: true }).some((e) =>
        e.isDirectory() ? walk(join(dir, e.name)) : e.name === 'libonnxruntime_providers_cuda.so');
      return walk(binRoot);
    } catch {
      return false;
    }
  },
};

export interface ProviderChoice {
  executionProviders: string[];
  reason: string;
}

export function chooseExecutionProviders(env: NodeJS.ProcessEnv, probe: CudaProbe = systemCudaProbe): ProviderChoice {
  const flag = env.USE_CUDA?.trim().toLowerCase();
  if (flag === '0' || flag === 'false') return { executionProviders: ['cpu'], reason: 'USE_CUDA=0' };
  if (flag === '1' || flag === 'true') return { executionProviders: ['cuda', 'cpu'], reason: 'USE_CUDA=1' };
  const device = probe.hasDevice();
  const provider = device && probe.hasCudaProvider();
  if (device && provider) return { executionProviders: ['cuda', 'cpu'], reason: 'NVIDIA device and CUDA provider found' };
  return {
    executionProviders: ['cpu'],
    reason: device ? 'NVIDIA device found but onnxruntime-node was installed without its CUDA provider' : 'no NVIDIA device',
  };
}
