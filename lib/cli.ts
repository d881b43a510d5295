#!/usr/bin/env node
// The `mmap-share` command: `mmap-share inspect <handle|path|name> [--json] [--check]`.
import { inspect, parseArgs } from 'node:util';
import { MmapShareError } from './errors.js';
import { type Inspection, inspectRegion, type MapInspection } from './inspect.js';

const USAGE = 'usage: mmap-share inspect <handle|path|name> [--json] [--check]';

function main(argv: string[]): number {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { json: { type: 'boolean' }, check: { type: 'boolean' } },
  });
  const [command, ref] = positionals;
  if (command !== 'inspect' || ref === undefined || positionals.length > 2) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  try {
    const report = inspectRegion(ref, values.check);
    if (report.kind === 'map') {
      process.stdout.write(values.json ? `${JSON.stringify(report)}\n` : mapAsText(report));
      return report.check?.ok === false ? 1 : 0;
    }
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

function mapAsText(report: MapInspection): string {
  const { stats } = report;
  const holder = report.holder
    ? `held by pid ${report.holder.pid} (${report.holder.running ? 'running' : 'gone'})`
    : 'free';
  const check =
    report.check === undefined
      ? []
      : report.check.ok
        ? ['check    ok']
        : [`check    ${report.check.problems.length} problems`, ...report.check.problems.map((line) => `  ${line}`)];
  return [
    `map      ${report.handle}`,
    `layout   ${report.layout}`,
    `size     ${report.size} bytes`,
    `entries  ${stats.entries} of ${stats.maxEntries} (${stats.pending} computing), load ${(report.load * 100).toFixed(1)}% of ${report.slots} slots`,
    `bytes    ${stats.bytes} of ${stats.capacity} in use`,
    `eviction ${report.eviction}, ttl ${report.ttl === 0 ? 'none' : `${report.ttl} ms`}`,
    `version  ${report.version}`,
    `codec    ${report.codec}`,
    `lock     ${holder}`,
    `counts   ${stats.hits} hits, ${stats.misses} misses, ${stats.sets} sets, ${stats.deletes} deletes, ${stats.evictions} evictions, ${stats.expirations} expirations, ${stats.repairs} repairs`,
    ...check,
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
