/** Alarms on what needs a human: messages in a DLQ, function errors and throttles, a stuck ingest queue. */
import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subs from 'aws-cdk-lib/aws-sns-subscriptions';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';

export interface MonitoringProps {
  readonly key: kms.IKey;
  readonly deadLetterQueues: Record<string, sqs.IQueue>;
  readonly functions: Record<string, lambda.IFunction>;
  readonly ingestQueue: sqs.IQueue;
  readonly alarmEmail?: string;
}

export class Monitoring extends Construct {
  readonly topic: sns.Topic;
  readonly alarms: cloudwatch.Alarm[] = [];

  constructor(scope: Construct, id: string, props: MonitoringProps) {
    super(scope, id);
    this.topic = new sns.Topic(this, 'AlarmTopic', {
      displayName: 'cxr-opacity alarms',
      masterKey: props.key,
      enforceSSL: true,
    });
    if (props.alarmEmail) this.topic.addSubscription(new subs.EmailSubscription(props.alarmEmail));
    const notify = new actions.SnsAction(this.topic);

    const add = (alarmId: string, metric: cloudwatch.IMetric, description: string, threshold = 0): void => {
      const alarm = new cloudwatch.Alarm(this, alarmId, {
        metric,
        threshold,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        alarmDescription: description,
      });
      alarm.addAlarmAction(notify);
      alarm.addOkAction(notify);
      this.alarms.push(alarm);
    };

    for (const [name, dlq] of Object.entries(props.deadLetterQueues)) {
      add(`${name}NotEmpty`, dlq.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(1), statistic: 'Maximum' }),
        `${name} holds messages that could not be processed: inspect them, fix the cause, then redrive.`);
    }
    for (const [name, fn] of Object.entries(props.functions)) {
      add(`${name}Errors`, fn.metricErrors({ period: Duration.minutes(5), statistic: 'Sum' }),
        `${name} invocations failed (unhandled errors or timeouts).`);
      add(`${name}Throttles`, fn.metricThrottles({ period: Duration.minutes(5), statistic: 'Sum' }),
        `${name} was throttled: its reserved concurrency is exhausted.`);
    }
    add('IngestBacklogOld', props.ingestQueue.metricApproximateAgeOfOldestMessage({ period: Duration.minutes(5), statistic: 'Maximum' }),
      'The oldest upload has waited more than 30 minutes for segmentation.', 30 * 60);
  }
}
