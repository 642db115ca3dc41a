/** In-memory implementations of the pipeline ports: for analyzeInMemory (CLI, the API's POST /v1/analyze) and tests. */
import { readFile, stat } from 'node:fs/promises';
import type { ResultItem, StageMessage } from './messages';
import type { MessageSink, ObjectInfo, ObjectStore, ResultStore, StageLogger, StoredObject } from './ports';

export class MemoryObjects implements ObjectStore {
  readonly objects = new Map<string, { body: Uint8Array; contentType: string; metadata: Record<string, string> }>();
  private id = (bucket: string, key: string) => `${bucket}/${key}`;

  async head(bucket: string, key: string): Promise<ObjectInfo> {
    return { size: (await this.get(bucket, key)).body.length };
  }

  async get(bucket: string, key: string): Promise<StoredObject> {
    const o = this.objects.get(this.id(bucket, key));
    if (!o) throw Object.assign(new Error(`no object ${bucket}/${key}`), { name: 'NoSuchKey' });
    return { body: o.body, metadata: o.metadata };
  }

  async put(bucket: string, key: string, body: Uint8Array | string, contentType: string, metadata: Record<string, string> = {}): Promise<void> {
    this.objects.set(this.id(bucket, key), { body: typeof body === 'string' ? Buffer.from(body) : body, contentType, metadata });
  }
}

/**
 * The CLI's object store: objects in `filesBucket` are files on disk (the key is the path), so the
 * segment stage's size cap is checked on the file's stat before it is read; outputs stay in memory.
 */
export class FileBackedObjects extends MemoryObjects {
  constructor(readonly filesBucket: string) {
    super();
  }

  override async head(bucket: string, key: string): Promise<ObjectInfo> {
    return bucket === this.filesBucket ? { size: (await stat(key)).size } : super.head(bucket, key);
  }

  override async get(bucket: string, key: string): Promise<StoredObject> {
    return bucket === this.filesBucket ? { body: await readFile(key), metadata: {} } : super.get(bucket, key);
  }
}

export class MemoryResults implements ResultStore {
  readonly items = new Map<string, ResultItem>();
  async putIfAbsent(item: ResultItem): Promise<'created' | 'exists'> {
    if (this.items.has(item.imageId)) return 'exists';
    this.items.set(item.imageId, item);
    return 'created';
  }
  async get(imageId: string): Promise<ResultItem | undefined> {
    return this.items.get(imageId);
  }
}

export class MemorySink implements MessageSink {
  readonly messages: StageMessage[] = [];
  async send(message: StageMessage): Promise<void> {
    this.messages.push(message);
  }
}

export const silentLogger: StageLogger = { info: () => undefined, warn: () => undefined, error: () => undefined };
