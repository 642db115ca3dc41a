/**
 * The pseudonym key of runs on one machine (the CLI, `npm start`, `npm run api`): PSEUDONYM_KEY when set, else 32
 * random bytes made once per data folder and kept there (mode 0600), so pseudonyms and shifted study days are
 * stable across runs into the same output folder and unguessable to anyone without the key file. On AWS the key
 * lives in Secrets Manager. Never a built-in key: with a public key, a patient id or a study date is recovered from
 * its pseudonym by trying the candidates.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** The folder under an output folder where local runs keep their state (the local S3 and DynamoDB, the key). */
export const LOCAL_DATA_DIR = '.local-data';

export function localPseudonymKey(dataDir: string): string {
  if (process.env.PSEUDONYM_KEY) return process.env.PSEUDONYM_KEY;
  const file = join(dataDir, 'pseudonym.key');
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const key = randomBytes(32).toString('hex');
  writeFileSync(file, key, { mode: 0o600, flag: 'wx' });
  return key;
}
