/**
 * ResultStore over DynamoDB. One item per image, partition key imageId; the byPatient and byStudy
 * indexes (patientKey / studyKey + sortKey = acquiredAt#imageId) list a patient's or a study's images
 * in time order. The same definition creates the table locally and is mirrored by the CDK stack.
 */
import {
  ConditionalCheckFailedException, CreateTableCommand, type CreateTableCommandInput, type DynamoDBClient,
} from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, PutCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import type { ResultItem } from '../pipeline/messages';
import type { ResultStore } from '../pipeline/ports';

export const RESULTS_TABLE_KEYS = {
  partitionKey: 'imageId',
  byPatient: { name: 'byPatient', partitionKey: 'patientKey', sortKey: 'sortKey' },
  byStudy: { name: 'byStudy', partitionKey: 'studyKey', sortKey: 'sortKey' },
} as const;

export function resultsTableDefinition(tableName: string): CreateTableCommandInput {
  const k = RESULTS_TABLE_KEYS;
  return {
    TableName: tableName,
    BillingMode: 'PAY_PER_REQUEST',
    AttributeDefinitions: [
      { AttributeName: k.partitionKey, AttributeType: 'S' },
      { AttributeName: 'patientKey', AttributeType: 'S' },
      { AttributeName: 'studyKey', AttributeType: 'S' },
      { AttributeName: 'sortKey', AttributeType: 'S' },
    ],
    KeySchema: [{ AttributeName: k.partitionKey, KeyType: 'HASH' }],
    GlobalSecondaryIndexes: [k.byPatient, k.byStudy].map((g) => ({
      IndexName: g.name,
      KeySchema: [
        { AttributeName: g.partitionKey, KeyType: 'HASH' as const },
        { AttributeName: g.sortKey, KeyType: 'RANGE' as const },
      ],
      Projection: { ProjectionType: 'ALL' as const },
    })),
  };
}

/** Powertools idempotency's table: partition key `id`, TTL on `expiration` (set by CDK on AWS). */
export function idempotencyTableDefinition(tableName: string): CreateTableCommandInput {
  return {
    TableName: tableName,
    BillingMode: 'PAY_PER_REQUEST',
    AttributeDefinitions: [{ AttributeName: 'id', AttributeType: 'S' }],
    KeySchema: [{ AttributeName: 'id', KeyType: 'HASH' }],
  };
}

export async function createTable(ddb: DynamoDBClient, def: CreateTableCommandInput): Promise<void> {
  await ddb.send(new CreateTableCommand(def));
}

export class DynamoResults implements ResultStore {
  private readonly doc: DynamoDBDocumentClient;
  constructor(ddb: DynamoDBClient, private readonly tableName: string) {
    this.doc = DynamoDBDocumentClient.from(ddb, { marshallOptions: { removeUndefinedValues: true } });
  }

  async putIfAbsent(item: ResultItem): Promise<'created' | 'exists'> {
    try {
      await this.doc.send(new PutCommand({
        TableName: this.tableName,
        Item: item,
        ConditionExpression: 'attribute_not_exists(imageId)',
      }));
      return 'created';
    } catch (e) {
      if (e instanceof ConditionalCheckFailedException || (e as Error).name === 'ConditionalCheckFailedException') return 'exists';
      throw e;
    }
  }

  async get(imageId: string): Promise<ResultItem | undefined> {
    const res = await this.doc.send(new GetCommand({ TableName: this.tableName, Key: { imageId }, ConsistentRead: true }));
    return res.Item as ResultItem | undefined;
  }

  /**
   * A page of a patient's images in time order (byPatient: acquiredAt#imageId), oldest first unless
   * order is 'desc'. `next` is DynamoDB's LastEvaluatedKey: pass it back as `after` for the next page.
   */
  async listByPatient(patientKey: string, opts: { limit?: number; order?: 'asc' | 'desc'; after?: Record<string, unknown> } = {}): Promise<PatientPage> {
    const k = RESULTS_TABLE_KEYS.byPatient;
    const limit = opts.limit ?? 100;
    // One item more than asked: DynamoDB returns a LastEvaluatedKey whenever it stops at the Limit, even with nothing
    // after it, and a `next` must mean that there are more images (api/openapi.yaml nextToken).
    const res = await this.doc.send(new QueryCommand({
      TableName: this.tableName,
      IndexName: k.name,
      KeyConditionExpression: '#p = :p',
      ExpressionAttributeNames: { '#p': k.partitionKey },
      ExpressionAttributeValues: { ':p': patientKey },
      ScanIndexForward: (opts.order ?? 'asc') === 'asc',
      Limit: limit + 1,
      ...(opts.after ? { ExclusiveStartKey: opts.after } : {}),
    }));
    const items = (res.Items ?? []) as ResultItem[];
    if (items.length <= limit) return { items };
    const last = items[limit - 1] as unknown as Record<string, unknown>;
    const next = { [RESULTS_TABLE_KEYS.partitionKey]: last[RESULTS_TABLE_KEYS.partitionKey], [k.partitionKey]: last[k.partitionKey], [k.sortKey]: last[k.sortKey] };
    return { items: items.slice(0, limit), next };
  }
}

export interface PatientPage {
  items: ResultItem[];
  next?: Record<string, unknown>;
}
