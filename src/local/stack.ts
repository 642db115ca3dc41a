/**
 * Embedded local stand-ins for the AWS services the pipeline uses: s3rver (S3) and dynalite
 * (DynamoDB), real HTTP servers on 127.0.0.1 with ephemeral ports, reached through the ordinary AWS
 * SDK clients. Nothing leaves the machine.
 */
import { mkdtempSync, mkdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Server } from 'node:http';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { createTable, idempotencyTableDefinition, resultsTableDefinition } from '../aws/results-table';
import { installLongKeySupport } from './long-keys';

// Neither package ships type declarations.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const S3rver = require('s3rver') as new (opts: Record<string, unknown>) => S3rverInstance;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const dynalite = require('dynalite') as (opts: Record<string, unknown>) => Server;

interface S3rverInstance {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
  on(event: 'event', cb: (e: S3NotificationLike) => void): void;
}

export interface S3NotificationLike {
  Records: { eventName: string; s3: { bucket: { name: string }; object: { key: string; size?: number; eTag?: string } } }[];
}

export const LOCAL_NAMES = {
  uploadsBucket: 'cxr-uploads',
  resultsBucket: 'cxr-results',
  resultsTable: 'cxr-results',
  idempotencyTable: 'cxr-idempotency',
} as const;

const CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

export interface LocalStack {
  s3: S3Client;
  ddb: DynamoDBClient;
  dataDir: string;
  s3Endpoint: string;
  ddbEndpoint: string;
  onObjectCreated(cb: (notification: S3NotificationLike) => void): void;
  stopDynamo(): Promise<void>;
  startDynamo(): Promise<void>;
  /** Stops and restarts the S3 stand-in on the same port and data (fault-injection tests). */
  stopS3(): Promise<void>;
  startS3(): Promise<void>;
  stop(): Promise<void>;
}

export interface LocalStackOptions {
  dataDir?: string;
}

export async function startLocalStack(opts: LocalStackOptions = {}): Promise<LocalStack> {
  // Keys up to S3's 1024 bytes, whatever their segment lengths (src/local/long-keys.ts).
  installLongKeySupport();
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'cxr-opacity-'));
  mkdirSync(join(dataDir, 's3'), { recursive: true });
  const listeners: ((n: S3NotificationLike) => void)[] = [];
  const newS3rver = (port: number) => {
    const srv = new S3rver({
      address: '127.0.0.1', port, silent: true, directory: join(dataDir, 's3'),
      configureBuckets: [{ name: LOCAL_NAMES.uploadsBucket }, { name: LOCAL_NAMES.resultsBucket }],
    });
    srv.on('event', (e) => {
      if (e.Records?.[0]?.eventName?.startsWith('ObjectCreated')) listeners.forEach((cb) => cb(e));
    });
    return srv;
  };
  let s3rver = newS3rver(0);
  const s3Addr = await s3rver.run();
  const s3Endpoint = `http://127.0.0.1:${s3Addr.port}`;

  // dynalite keeps its LevelDB under the data dir, so a stop/start of the server keeps the data.
  const ddbPath = join(dataDir, 'dynamodb');
  let ddbServer = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0, path: ddbPath });
  const listen = (srv: Server, port = 0) => new Promise<number>((res, rej) => {
    srv.once('error', rej);
    srv.listen(port, '127.0.0.1', () => res((srv.address() as AddressInfo).port));
  });
  const ddbPort = await listen(ddbServer);
  const ddbEndpoint = `http://127.0.0.1:${ddbPort}`;

  const s3 = new S3Client({
    endpoint: s3Endpoint, forcePathStyle: true, region: 'us-east-1', credentials: CREDENTIALS,
    // s3rver does not understand the SDK's default flexible checksums.
    requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED',
  });
  const ddb = new DynamoDBClient({ endpoint: ddbEndpoint, region: 'us-east-1', credentials: CREDENTIALS, maxAttempts: 5 });
  for (const def of [resultsTableDefinition(LOCAL_NAMES.resultsTable), idempotencyTableDefinition(LOCAL_NAMES.idempotencyTable)]) {
    try {
      await createTable(ddb, def);
    } catch (e) {
      if ((e as Error).name !== 'ResourceInUseException') throw e; // kept from an earlier run (--data-dir)
    }
  }
  const closeServer = (srv: Server) => new Promise<void>((res) => {
    srv.close(() => res());
    (srv as Server & { closeAllConnections?: () => void }).closeAllConnections?.();
  });
  return {
    s3, ddb, dataDir, s3Endpoint, ddbEndpoint,
    onObjectCreated: (cb) => listeners.push(cb),
    async stopS3() {
      // Drop keep-alive connections too, or the server lingers for the clients that hold them.
      const closing = s3rver.close();
      (s3rver as unknown as { httpServer?: Server }).httpServer?.closeAllConnections();
      await closing;
    },
    async startS3() {
      s3rver = newS3rver(s3Addr.port);
      await s3rver.run();
    },
    async stopDynamo() {
      await closeServer(ddbServer);
      // dynalite holds its LevelDB open; close it so a new server can open the same path.
      await new Promise<void>((res) => ((ddbServer as unknown as { db?: { close(cb: () => void): void } }).db?.close(() => res()) ?? res()));
    },
    async startDynamo() {
      ddbServer = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0, path: ddbPath });
      await listen(ddbServer, ddbPort);
    },
    async stop() {
      s3.destroy();
      ddb.destroy();
      await Promise.allSettled([s3rver.close(), closeServer(ddbServer)]);
    },
  };
}
