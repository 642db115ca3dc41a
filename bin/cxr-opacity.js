#!/usr/bin/env node
// Command-line entry: `cxr-opacity analyze ...` (stand-alone) or `cxr-opacity start ...` (local pipeline).
require('tsx/cjs');
const [command, ...rest] = process.argv.slice(2);
const commands = {
  analyze: () => require('../src/cli/analyze.ts').analyzeMain(rest),
  start: () => require('../src/local/start.ts').startMain(rest),
};
if (!commands[command]) {
  console.log('usage: cxr-opacity analyze <files or folders...> [--out DIR] [--format table|json|csv]\n' +
    '       cxr-opacity start <files or folders...> [--out DIR] [--data-dir DIR]   (local S3/DynamoDB pipeline)');
  process.exitCode = command ? 2 : 0;
} else {
  commands[command]().then((code) => { process.exitCode = code; }, (e) => {
    console.error(`cxr-opacity ${command}: ${e.message}`);
    process.exitCode = 1;
  });
}
