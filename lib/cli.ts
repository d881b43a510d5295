#!/usr/bin/env node
// The `mmap-share` command: `mmap-share inspect <handle|path|name>`, with --keys and --get to look inside a map.
import { existsSync } from 'node:fs';
import { inspect, parseArgs } from 'node:util';
import type { Verification } from './api.js';
import { MmapShareError } from './errors.js';
import {
  type Inspection,
  inspectRegion,
  type KeyListing,
  type Lookup,
  type MapInspection,
  mapKeys,
  mapValue,
  type QueueInspection,
} from './inspect.js';
import { envKey, isName } from './region.js';

const USAGE = `usage: mmap-share inspect <handle|path|name> [--json] [--check]
       mmap-share inspect <handle|path|name> --keys [--limit N] [--json]
       mmap-share inspect <handle|path|name> --get KEY [--json]
`;

const HELP = `${USAGE}
Prints what a live mmap-share region holds, without taking its lock.

  <handle|path|name>  share.handle or map.handle, printed by a process that holds the region; the path given
                      to create({ path }); or a name given to create({ name }), known only to the process that
                      created the region and the processes it forks
  --json              print one JSON object, for scripts
  --check             a map or a queue: also run verify(), which takes the lock; exit status 1 if it finds problems
  --keys              a map: list its keys, in code unit order
  --limit N           with --keys: list N keys at most (default 100)
  --get KEY           a map: print the value of KEY; exit status 1 if it holds none
  -h, --help          print this help

Exit status: 0 done, 1 an error (or what --check and --get say above), 2 a mistake in the command line.
`;

const DEFAULT_LIMIT = 100;

/** A mistake in the command line: its reason and the usage go to stderr, with exit status 2. */
class UsageError extends Error {}

interface Args {
  ref: string;
  json: boolean;
  check: boolean;
  /** With --keys: how many to list. */
  limit?: number;
  get?: string;
}

function main(argv: string[]): number {
  try {
    const args = parse(argv);
    if (args === 'help') {
      process.stdout.write(HELP);
      return 0;
    }
    return inspectCommand(args);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    const reason = error.message === '' ? '' : `mmap-share: ${error.message}\n`;
    process.stderr.write(`${reason}${USAGE}run mmap-share --help for more\n`);
    return 2;
  }
}

function parse(argv: string[]): Args | 'help' {
  if (argv.length === 0) throw new UsageError('');
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        json: { type: 'boolean' },
        check: { type: 'boolean' },
        keys: { type: 'boolean' },
        limit: { type: 'string' },
        get: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    if (!(error as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS_')) throw error;
    // --help wins over any other mistake on the line.
    const options = argv.includes('--') ? argv.slice(0, argv.indexOf('--')) : argv;
    if (options.includes('--help') || options.includes('-h')) return 'help';
    // Node's first sentence names an unknown option; the rest is about `--`, which this command has no use for.
    const { code, message } = error as NodeJS.ErrnoException;
    const reason = code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' ? message.split('. ')[0]! : message.replace(/\n/g, ' ');
    throw new UsageError(reason.charAt(0).toLowerCase() + reason.slice(1));
  }
  const { positionals, values } = parsed;
  if (values.help) return 'help';
  const [command, ref, extra] = positionals;
  if (command === undefined) throw new UsageError('no command given');
  if (command !== 'inspect') throw new UsageError(`unknown command ${command}`);
  if (ref === undefined) throw new UsageError('inspect needs a handle, a path or a name');
  if (extra !== undefined) throw new UsageError(`unexpected argument ${extra}`);
  if (values.keys && values.get !== undefined) throw new UsageError('--keys and --get cannot go together');
  if (values.check && (values.keys || values.get !== undefined)) {
    throw new UsageError('--check cannot go with --keys or --get');
  }
  if (values.limit !== undefined && !values.keys) throw new UsageError('--limit goes with --keys');
  return {
    ref,
    json: values.json ?? false,
    check: values.check ?? false,
    limit: values.keys ? positiveInteger('--limit', values.limit ?? String(DEFAULT_LIMIT)) : undefined,
    get: values.get,
  };
}

function positiveInteger(flag: string, text: string): number {
  const number = Number(text);
  if (!/^[0-9]+$/.test(text) || !Number.isSafeInteger(number) || number < 1) {
    throw new UsageError(`${flag} must be a positive integer, got ${text === '' ? 'nothing' : text}`);
  }
  return number;
}

function inspectCommand(args: Args): number {
  try {
    return run(args);
  } catch (error) {
    if (!(error instanceof MmapShareError)) throw error;
    process.stderr.write(`mmap-share: ${error.message} (${error.code})\n${hintFor(error, args.ref)}`);
    return 1;
  }
}

function run({ ref, json, check, limit, get }: Args): number {
  if (limit !== undefined) {
    const listing = mapKeys(ref, limit) ?? notAMap(ref);
    process.stdout.write(json ? `${JSON.stringify(listing)}\n` : keysAsText(listing));
    return 0;
  }
  if (get !== undefined) {
    const lookup = mapValue(ref, get) ?? notAMap(ref);
    if (lookup.value === undefined) {
      process.stderr.write(`mmap-share: the map ${lookup.handle} holds no key ${JSON.stringify(get)}\n`);
      return 1;
    }
    process.stdout.write(json ? `${withValue(lookup)}\n` : `${inspect(lookup.value, VALUE_VIEW)}\n`);
    return 0;
  }
  const report = inspectRegion(ref, check);
  if (report.kind === 'map') {
    process.stdout.write(json ? `${JSON.stringify(report)}\n` : mapAsText(report));
    return report.check?.ok === false ? 1 : 0;
  }
  if (report.kind === 'queue') {
    process.stdout.write(json ? `${JSON.stringify(report)}\n` : queueAsText(report));
    return report.check?.ok === false ? 1 : 0;
  }
  process.stdout.write(json ? `${withValue(report)}\n` : asText(report));
  return 0;
}

function notAMap(ref: string): never {
  throw new UsageError(`--keys and --get apply to maps (SharedMap), and ${ref} is no map`);
}

// A name lives in the environment of the process that created the region and of the processes it forks: from another
// shell it names nothing, and the user needs another way in.
function hintFor(error: MmapShareError, ref: string): string {
  if (error.code !== 'ERR_BAD_HANDLE' || !isName(ref) || process.env[envKey(ref)] !== undefined) return '';
  const file = existsSync(ref) ? ` To inspect the file ${ref} in this directory, pass ./${ref}.` : '';
  return (
    'A name is known only to the process that created the region and the processes it forks. From another shell, ' +
    'print share.handle (map.handle for a map) in a process that holds the region and pass that handle, or create ' +
    `the region with { path } and pass the path.${file}\n`
  );
}

const VALUE_VIEW = { depth: 4, colors: false, maxArrayLength: 20, breakLength: 100 };

// One key a line. Lines that begin with ( are notes, and a key that could be mistaken for one, or that would not
// read as itself on a line of its own, is given as a JSON string (as is one that begins with ").
function keysAsText({ keys, total }: KeyListing): string {
  const lines = keys.map((key) => (/^$|^["(\s]|\s$|\p{Cc}/u.test(key) ? JSON.stringify(key) : key));
  if (total === 0) lines.push('(no keys)');
  if (total > keys.length) {
    lines.push(`(${total - keys.length} more, ${total} in all: --limit ${total} lists them all)`);
  }
  return `${lines.join('\n')}\n`;
}

function asText(report: Inspection): string {
  const committed = report.version === 0 ? 'never set' : `slot ${report.version & 1}`;
  const holder = holderText(report.holder);
  const value = report.valueError ?? inspect(report.value, VALUE_VIEW);
  return [
    `region   ${report.handle}`,
    `layout   ${report.layout}`,
    `size     ${report.size} bytes a slot`,
    `version  ${report.version} (${committed})`,
    `slot 0   ${report.slots[0]} bytes`,
    `slot 1   ${report.slots[1]} bytes`,
    `codec    ${report.codec}`,
    `lock     ${holder}`,
    `waiters  ${report.waiters}`,
    `value    ${value.replace(/\n/g, '\n         ')}`,
    '',
  ].join('\n');
}

function mapAsText(report: MapInspection): string {
  const { stats } = report;
  const holder = holderText(report.holder);
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
    `waiters  ${report.waiters}`,
    `counts   ${stats.hits} hits, ${stats.misses} misses, ${stats.coalesced} coalesced, ${stats.sets} sets, ${stats.deletes} deletes, ${stats.evictions} evictions, ${stats.expirations} expirations, ${stats.repairs} repairs`,
    ...checkText(report.check),
    '',
  ].join('\n');
}

function queueAsText(report: QueueInspection): string {
  const { stats } = report;
  return [
    `queue    ${report.handle}`,
    `layout   ${report.layout}`,
    `messages ${stats.messages}`,
    `bytes    ${stats.bytes} of ${stats.capacity} in use, ${report.maxMessage} a message at most`,
    `codec    ${report.codec}`,
    `lock     ${holderText(report.holder)}`,
    `waiters  ${report.waiters}`,
    `counts   ${stats.pushed} pushed, ${stats.taken} taken, ${stats.repairs} repairs`,
    ...checkText(report.check),
    '',
  ].join('\n');
}

function checkText(check: Verification | undefined): string[] {
  if (check === undefined) return [];
  if (check.ok) return ['check    ok'];
  return [`check    ${check.problems.length} problems`, ...check.problems.map((line) => `  ${line}`)];
}

function holderText(holder: Inspection['holder']): string {
  return holder ? `held by pid ${holder.pid} (${holder.running ? 'running' : 'gone'})` : 'free';
}

// Values JSON cannot carry (BigInt, Map, Set, undefined...) are given as util.inspect text in `valueText`.
function withValue(report: Inspection | Lookup): string {
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
