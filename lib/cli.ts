#!/usr/bin/env node
// The `mmap-share` command: `mmap-share inspect <handle|path|name> [--json]`.
import { inspect, parseArgs } from 'node:util';
import { MmapShareError } from './errors.js';
import { type Inspection, inspectRegion } from './inspect.js';

const USAGE = 'usage: mmap-share inspect <handle|path|name> [--json]';

function main(argv: string[]): number {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { json: { type: 'boolean' } },
  });
  const [command, ref] = positionals;
  if (command !== 'inspect' || ref === undefined || positionals.length > 2) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  try {
    const report = inspectRegion(ref);
    process.stdout.write(values.json ? `${asJson(report)}\n` : asText(report));
    return 0;
  } catch (error) {
    if (!(error instanceof MmapShareError)) throw error;
    process.stderr.write(`mmap-share: ${error.message} (${error.code})\n`);
    return 1;
  }
}

function asText(report: Inspection): string {
  const committed = report.version === 0 ? 'never set' : `slot ${report.version & 1}`;
  const holder = report.holder
    ? `held by pid ${report.holder.pid} (${report.holder.running ? 'running' : 'gone'})`
    : 'free';
  const value =
    report.valueError ?? inspect(report.value, { depth: 4, colors: false, maxArrayLength: 20, breakLength: 100 });
  return [
    `region   ${report.handle}`,
    `layout   ${report.layout}`,
    `size     ${report.size} bytes a slot`,
    `version  ${report.version} (${committed})`,
    `slot 0   ${report.slots[0]} bytes`,
    `slot 1   ${report.slots[1]} bytes`,
    `codec    ${report.codec}`,
    `lock     ${holder}`,
    `value    ${value.replace(/\n/g, '\n         ')}`,
    '',
  ].join('\n');
}

// Values JSON cannot carry (BigInt, Map, Set, undefined...) are given as util.inspect text in `valueText`.
function asJson(report: Inspection): string {
  let value: string | undefined;
  try {
    value = JSON.stringify(report.value);
  } catch {
    value = undefined;
  }
  const faithful =
    value !== undefined &&
    inspect(JSON.parse(value), { depth: Infinity }) === inspect(report.value, { depth: Infinity });
  const { value: decoded, ...header } = report;
  return JSON.stringify(faithful ? report : { ...header, valueText: inspect(decoded, { depth: 4 }) });
}

process.exitCode = main(process.argv.slice(2));
