/** Builds the CDK app (used by cdk/bin/app.ts and by the template tests). */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { App, type AppProps, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks, HIPAASecurityChecks } from 'cdk-nag';
import { CxrOpacityStack, type CxrOpacityStackProps } from './stack';

export const STACK_NAME = 'CxrOpacity';

export function nagPacks(app: App): [AwsSolutionsChecks, HIPAASecurityChecks] {
  return [new AwsSolutionsChecks(app, { verbose: true }), new HIPAASecurityChecks(app, { verbose: true })];
}

/**
 * The feature flags pinned in cdk.json. The CLI passes them itself; an App built in a test reads them here so
 * that tests see the same template as `cdk synth`.
 */
export function pinnedContext(): Record<string, unknown> {
  const file = path.resolve(__dirname, '..', '..', 'cdk.json');
  const json = JSON.parse(readFileSync(file, 'utf8')) as { context?: Record<string, unknown> };
  return json.context ?? {};
}

export function buildApp(appProps: AppProps = {}, stackProps: CxrOpacityStackProps = {}): { app: App; stack: CxrOpacityStack } {
  const app = new App({ ...appProps, context: { ...pinnedContext(), ...appProps.context } });
  const stack = new CxrOpacityStack(app, STACK_NAME, {
    description: 'cxr-opacity: COVID-19 opacity measurement on chest X-rays (S3 -> SQS -> Lambda -> DynamoDB)',
    ...stackProps,
  });
  Validations.of(app).addPlugins(...nagPacks(app));
  return { app, stack };
}
