/**
 * What lets `npm start` resume at once after Ctrl-C (or a crash) instead of waiting out a stale lock.
 *
 * The local queues live in this process's memory, so when a run starts nothing from an earlier process
 * is in flight: an idempotency record left in the data dir can only be an interrupted image's
 * INPROGRESS lock (which would fail its re-upload with IdempotencyAlreadyInProgressError until the
 * lock expires, up to the segment timeout of 120 s later) or a COMPLETED record whose score message
 * died with the process (which would swallow the re-upload's event for 7 days, and the image would
 * never get a result). Neither dedupes anything any more, so the runner deletes them all before it
 * uploads; finished images are recognised by their item in the results table instead (resultFor).
 *
 * On AWS this does not apply: SQS keeps in-flight messages, and the records are needed there.
 */
import { DeleteItemCommand, ScanCommand, type AttributeValue, type DynamoDBClient } from '@aws-sdk/client-dynamodb';

/** Deletes every record of the local idempotency table and returns how many there were. */
export async function clearIdempotencyRecords(ddb: DynamoDBClient, tableName: string): Promise<number> {
  let deleted = 0;
  let start: Record<string, AttributeValue> | undefined;
  do {
    const page = await ddb.send(new ScanCommand({ TableName: tableName, ProjectionExpression: 'id', ExclusiveStartKey: start }));
    for (const item of page.Items ?? []) {
      await ddb.send(new DeleteItemCommand({ TableName: tableName, Key: { id: item.id } }));
      deleted++;
    }
    start = page.LastEvaluatedKey;
  } while (start);
  return deleted;
}
