#!/usr/bin/env node
/** CDK entry point: `npm run synth`, `npx cdk deploy` (see cdk/README.md). */
import { buildApp } from '../lib/app';

const { app } = buildApp({}, {
  env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
});
app.synth();
