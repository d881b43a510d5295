// The benchmark harness itself, in its quick form: every contestant runs, and every update count is exact.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

// Runs a bench script with `args`; its stdout.
const bench = (script: string, ...args: string[]) =>
  execFileSync(process.execPath, [join(__dirname, '..', 'bench', script), ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  });

describe('npm run bench', () => {
  it('runs contestants in fresh processes, collects their reports through mmap-share, and checks update counts', () => {
    const out = bench(
      'run.mjs',
      '--quick',
      '--workloads=update,get',
      '--sizes=100B',
      '--contestants=mmap-share v8,mmap-share msgpack,floor,lmdb,process.send',
    );
    const rows = out.split('\n').filter((line) => line.startsWith('| 100B'));
    expect(rows).toHaveLength(10);
    expect(out).not.toContain('failed');
    // The table goes with a failure: which contestant's count was off, or whose report is missing.
    expect(
      rows.filter((row) => row.endsWith('| exact |')),
      out,
    ).toHaveLength(5);
  });

  it('runs the map workloads against lmdb and the whole-object MmapShare, with hit rate and bytes per entry', () => {
    const out = bench(
      'map.mjs',
      '--quick',
      '--workloads=get-uniform,insert-at-10k,hit-rate,bytes',
      '--contestants=SharedMap msgpack,lmdb,MmapShare whole object',
    );
    expect(out).not.toContain('failed');
    expect(out.match(/^\| (SharedMap msgpack|lmdb|MmapShare whole object) \| [\d,]+ \| [\d.]+ \|$/gm)).toHaveLength(5);
    const [, sampled, exact] = /SharedMap \(sampled LRU\) \| ([\d.]+)%[^]*exact LRU \(lru-cache\) \| ([\d.]+)%/.exec(
      out,
    )!;
    expect(Math.abs(Number(exact) - Number(sampled))).toBeLessThan(5);
    expect(out).toMatch(/map held [\d,]+ before its first eviction: [\d.]+ bytes each/);
  });

  it('streams queue messages from producer processes to a consumer, every one checked, beside its peers', () => {
    const peers = ['/dev/shm files tailed', 'SharedMap mailbox', 'MmapShare object update()'];
    const out = bench(
      'queue.mjs',
      '--quick',
      '--workloads=4->1,1->4,latency',
      `--contestants=SharedQueue v8,process.send json,${peers.join(',')}`,
    );
    expect(out).not.toContain('failed');
    expect(
      out.match(/^\| (4->1|1->4|latency) \| (SharedQueue v8|process.send json) \| .* \| exact \|$/gm),
    ).toHaveLength(6);
    // The peers that poll hand messages to one consumer: 4->1 and latency, not 1->4.
    const lines = out.split('\n');
    const rows = (work: string, check: string) =>
      peers.filter((peer) => lines.some((l) => l.startsWith(`| ${work} | ${peer} |`) && l.endsWith(`| ${check} |`)));
    expect(rows('4->1', 'exact')).toStrictEqual(peers);
    expect(rows('latency', 'exact')).toStrictEqual(peers);
    expect(rows('1->4', 'one consumer only')).toStrictEqual(peers);
  });

  it('runs the adapters through Keyv and express-rate-limit beside their in-memory and Redis stores', () => {
    const out = bench('adapters.mjs', '--quick');
    expect(out).not.toContain('failed');
    const rows = (unit: string) =>
      out
        .split(`#### ${unit}`)[1]!
        .split('####')[0]!
        .match(/^\| [^|]+ \| [\d,]+ \| [\d.]+ \|$/gm);
    expect([rows('keyv-get'), rows('keyv-set'), rows('erl-increment')].map((r) => r?.length)).toStrictEqual([7, 7, 5]);
  });
});
