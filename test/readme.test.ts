// The README's TypeScript snippets, each compiled as a module of a project of its own that installed mmap-share
// (`strict`, `module nodenext`), against the declarations in dist/: a snippet that drifts from the API fails here.
// What a snippet leaves to the reader's app (a logger, a db) is declared in the `<!-- given: ... -->` line above it.
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const root = join(__dirname, '..');
const readme = readFileSync(join(root, 'README.md'), 'utf8');
const snippets = [...readme.matchAll(/(?:<!-- given: (.*?) -->\n\n)?```ts\n([\s\S]*?)```/g)].map((match) => ({
  line: readme.slice(0, match.index).split('\n').length,
  given: match[1] ?? '',
  code: match[2]!,
}));
const work = mkdtempSync(join(tmpdir(), 'mmap-share-readme-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

// What a snippet may import beside mmap-share: the optional peers of its entries, the libraries the adapters are for.
const PEERS = [
  'redis',
  'keyv',
  'cache-manager',
  'express',
  'express-rate-limit',
  'express-session',
  '@types/node',
  '@types/express',
  '@types/express-session',
];

// A project whose node_modules holds mmap-share (this package), its peers and the types they need.
function project(name: string, given: string, code: string): string {
  const dir = join(work, name);
  mkdirSync(join(dir, 'node_modules', '@types'), { recursive: true });
  symlinkSync(root, join(dir, 'node_modules', 'mmap-share'));
  for (const peer of PEERS) symlinkSync(join(root, 'node_modules', peer), join(dir, 'node_modules', peer));
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, type: 'module', private: true }));
  writeFileSync(join(dir, 'given.d.ts'), given);
  writeFileSync(join(dir, 'snippet.mts'), code);
  const compilerOptions = { strict: true, module: 'nodenext', target: 'es2022', noEmit: true, types: ['node'] };
  writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions, files: ['given.d.ts', 'snippet.mts'] }));
  return dir;
}

async function compile(dir: string): Promise<string> {
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  return promisify(execFile)(process.execPath, [tsc, '-p', dir], { encoding: 'utf8' }).then(
    () => '',
    (error: { stdout: string }) => error.stdout,
  );
}

describe("the README's snippets", () => {
  it('are all found: one a job, the Redis backend, the quick start and SharedMap', () => {
    expect(snippets.length).toBeGreaterThanOrEqual(6);
  });

  it.concurrent.each(snippets)('compile: the snippet at line $line', async ({ line, given, code }) => {
    expect(await compile(project(`line-${line}`, given, code))).toBe('');
  });

  it('would fail to compile a snippet that misuses the API', async () => {
    const wrong = "import { MmapShare } from 'mmap-share';\nMmapShare.create(64).watch(({ level }) => level);\n";
    expect(await compile(project('wrong', '', wrong))).toMatch(/snippet\.mts.*error TS/);
  });
});
