/**
 * Where a batch goes: the per-image Lambda path (the ingest queue) or the GPU SageMaker async endpoint.
 * Large batches go to SageMaker, as do batches that arrive while the Lambda path is backed up; small
 * ones stay on Lambda, which has no cold GPU to wake. Pure, so the policy is tested on its own.
 */
export type Route = 'lambda' | 'sagemaker';

export interface RouteConfig {
  /** Batches with at least this many images go to SageMaker (env BATCH_THRESHOLD, default 50). */
  batchThreshold: number;
  /** When the ingest queue holds at least this many messages, batches go to SageMaker (env BACKLOG_THRESHOLD, default 500). */
  backlogThreshold: number;
  /** No endpoint configured: everything stays on Lambda. */
  endpointConfigured: boolean;
}

export interface RouteInput {
  batchSize: number;
  /** ApproximateNumberOfMessages of the ingest queue; undefined when it could not be read. */
  backlog?: number;
}

export interface RouteDecision {
  route: Route;
  reason: string;
}

export const DEFAULT_ROUTE_CONFIG: RouteConfig = { batchThreshold: 50, backlogThreshold: 500, endpointConfigured: true };

export function chooseRoute(input: RouteInput, cfg: RouteConfig): RouteDecision {
  const { batchSize, backlog } = input;
  if (!cfg.endpointConfigured) return { route: 'lambda', reason: 'no SageMaker endpoint is configured' };
  if (!(batchSize > 0)) return { route: 'lambda', reason: 'empty batch' };
  if (batchSize >= cfg.batchThreshold) {
    return { route: 'sagemaker', reason: `batch of ${batchSize} images reaches the batch threshold of ${cfg.batchThreshold}` };
  }
  if (backlog !== undefined && backlog >= cfg.backlogThreshold) {
    return { route: 'sagemaker', reason: `ingest queue backlog of ${backlog} reaches the backlog threshold of ${cfg.backlogThreshold}` };
  }
  return {
    route: 'lambda',
    reason: `batch of ${batchSize} images is under the batch threshold of ${cfg.batchThreshold}` +
      (backlog === undefined ? ' (ingest backlog unknown)' : ` and the ingest backlog of ${backlog} is under ${cfg.backlogThreshold}`),
  };
}

/** Reads the thresholds from the environment; invalid values fail loudly at start. */
export function routeConfigFromEnv(env: NodeJS.ProcessEnv): RouteConfig {
  const int = (name: string, dflt: number): number => {
    const raw = env[name];
    if (raw === undefined || raw === '') return dflt;
    const v = Number(raw);
    if (!Number.isInteger(v) || v < 1) throw new Error(`environment variable ${name} must be a positive integer, got "${raw}"`);
    return v;
  };
  return {
    batchThreshold: int('BATCH_THRESHOLD', DEFAULT_ROUTE_CONFIG.batchThreshold),
    backlogThreshold: int('BACKLOG_THRESHOLD', DEFAULT_ROUTE_CONFIG.backlogThreshold),
    endpointConfigured: Boolean(env.ENDPOINT_NAME),
  };
}
