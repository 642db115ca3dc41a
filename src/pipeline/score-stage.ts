/**
 * Stage 2, for one message of the segment stage: score the pixel counts the message carries, and write
 * result.json and the results-table item. Writing is conditional on the imageId, so a message
 * delivered twice leaves exactly one item. It reads no object and imports no imaging or DICOM code
 * (core/score and core/severity only, not the core barrel), so the score function's bundle stays small.
 */
import { scoreCounts } from '../core/score';
import type { SeverityConfig } from '../core/severity';
import { outputKeysFor, safeText, storedMeta, type ResultItem, type StageMessage } from './messages';
import type { ObjectStore, ResultStore, StageLogger } from './ports';

export interface ScoreStageDeps {
  objects: ObjectStore;
  results: ResultStore;
  severity: SeverityConfig;
  resultsBucket: string;
  log: StageLogger;
  now?: () => Date;
}

export interface ScoreOutcome {
  item: ResultItem;
  duplicate: boolean;
}

const UNKNOWN = 'UNKNOWN';

export async function runScoreStage(msg: StageMessage, deps: ScoreStageDeps): Promise<ScoreOutcome> {
  const { objects, results, log } = deps;
  const existing = await results.get(msg.imageId);
  if (existing) {
    log.info('duplicate message: result already recorded', { imageId: msg.imageId, status: existing.status });
    return { item: existing, duplicate: true };
  }
  const createdAt = (deps.now?.() ?? new Date()).toISOString();
  const common = {
    imageId: msg.imageId,
    patientKey: msg.patientKey ?? UNKNOWN,
    studyKey: msg.studyKey ?? UNKNOWN,
    // A patient's images sort by their shifted study day; images without one (no patient, or no date
    // in the input) by the time the result was recorded, as before.
    sortKey: `${msg.studyDate ?? createdAt}#${msg.imageId}`,
    ...(msg.studyDate ? { studyDate: msg.studyDate } : {}),
    createdAt,
    source: msg.source,
    path: msg.path,
    ...(msg.meta ? { meta: storedMeta(msg.meta) } : {}),
  };
  let item: ResultItem;
  if (msg.status === 'FAILED') {
    item = { ...common, status: 'FAILED', errorCode: msg.error.code, errorReason: safeText(msg.error.reason, 1000), timingsMs: msg.timingsMs };
  } else {
    const t0 = process.hrtime.bigint();
    const score = scoreCounts(msg.counts, deps.severity, msg.meta.pixelSpacingMm);
    const timingsMs = { ...msg.timingsMs, score: Math.round(Number(process.hrtime.bigint() - t0) / 1e5) / 10 };
    item = {
      ...common,
      status: 'SCORED',
      model: msg.model,
      score,
      quality: msg.quality,
      qualityWarnings: msg.quality.warnings.map((w) => w.code).join(' '),
      opacityPctTotal: score.opacityPct.total,
      opacityPctRight: score.opacityPct.right,
      opacityPctLeft: score.opacityPct.left,
      geographicExtent: score.geographicExtent.total,
      zoneScore: score.zones.total,
      grade: score.grade.label,
      riskIcu: score.risk.icu,
      riskMortality: score.risk.mortality,
      modelVersion: `${msg.model.name}@${msg.model.version}`,
      severityVersion: score.severityVersion,
      keys: msg.keys,
      timingsMs,
    };
  }
  await objects.put(deps.resultsBucket, outputKeysFor(msg.imageId).result, JSON.stringify(item, null, 2), 'application/json');
  const outcome = await results.putIfAbsent(item);
  if (outcome === 'exists') log.info('duplicate message: result already recorded', { imageId: msg.imageId });
  else log.info('result recorded', { imageId: msg.imageId, status: item.status, grade: item.grade, errorCode: item.errorCode });
  return { item, duplicate: outcome === 'exists' };
}
