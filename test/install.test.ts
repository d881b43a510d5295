// The package as a stranger installs it: `npm pack`, an empty project given the README's install advice (the json
// block of its Install section), `npm install <tarball> --strict-allow-scripts`, then a process that loads it by name.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = join(__dirname, '..');

const readme = readFileSync(join(root, 'README.md'), 'utf8');
const installStart = readme.indexOf('\n## Install\n');
const installSection = readme.slice(installStart, readme.indexOf('\n## ', installStart + 1));
const adviceBlock = /```json\n([\s\S]*?)```/.exec(installSection)?.[1];
const advice = JSON.parse(adviceBlock ?? 'null') as { allowScripts: Record<string, boolean> } | null;

function npm(cwd: string, ...args: string[]): { stdout: string; stderr: string } {
  const run = spawnSync('npm', args, { cwd, encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`npm ${args.join(' ')} failed (${run.status ?? run.signal}):\n${run.stderr}`);
  return { stdout: run.stdout, stderr: run.stderr };
}

describe('the packed package, installed into a fresh project with the README advice', () => {
  let dir = '';
  let project = '';
  let files = new Set<string>();
  let install = { stdout: '', stderr: '' };

  beforeAll(() => {
    if (!advice) throw new Error('the Install section of README.md has no json block of install advice');
    dir = realpathSync(mkdtempSync(join(tmpdir(), 'mmap-share-install-')));
    const [packed] = JSON.parse(npm(root, 'pack', '--json', '--pack-destination', dir).stdout) as {
      filename: string;
      files: { path: string }[];
    }[];
    files = new Set(packed!.files.map((file) => file.path));
    project = join(dir, 'project');
    mkdirSync(project);
    const manifest = { name: 'stranger', version: '1.0.0', private: true, ...advice };
    writeFileSync(join(project, 'package.json'), JSON.stringify(manifest, null, 2));
    // --prefer-offline takes from npm's cache whatever it holds (`npm ci` leaves most of these tarballs there), however
    // old, and asks the registry only for the rest: about 7 s here with a warm cache, 20 s with an empty one.
    const started = performance.now();
    install = npm(project, 'install', join(dir, packed!.filename), '--strict-allow-scripts', '--prefer-offline');
    console.info(`npm install of the packed mmap-share: ${((performance.now() - started) / 1000).toFixed(1)} s`);
  }, 300_000);

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('ships the MIT LICENSE, and no tests', () => {
    expect(files).toContain('LICENSE');
    const license = readFileSync(join(project, 'node_modules/mmap-share/LICENSE'), 'utf8');
    expect(license).toMatch(/^MIT License\n\nCopyright \(c\) 2026 the mmap-share authors\n/);
    expect([...files].filter((path) => /(^|\/)test\/|\.test\.ts$/.test(path))).toStrictEqual([]);
  });

  it('names in its source maps only files it ships, and ships no source that no map names', () => {
    const installed = join(project, 'node_modules/mmap-share');
    const missing: string[] = [];
    const named = new Set<string>();
    for (const path of files) {
      const url = /\/\/# sourceMappingURL=(\S+)\s*$/.exec(readFileSync(join(installed, path), 'utf8'))?.[1];
      if (url && !files.has(posix.join(posix.dirname(path), url))) missing.push(`${path} -> ${url}`);
      if (!path.endsWith('.map')) continue;
      const map = JSON.parse(readFileSync(join(installed, path), 'utf8')) as { sourceRoot?: string; sources: string[] };
      for (const source of map.sources) {
        const target = posix.join(posix.dirname(path), map.sourceRoot ?? '', source);
        named.add(target);
        if (!files.has(target)) missing.push(`${path} -> ${source}`);
      }
    }
    expect(missing).toStrictEqual([]);
    expect([...files].filter((path) => path.startsWith('lib/') && !named.has(path))).toStrictEqual([]);
  });

  it("installs under --strict-allow-scripts, the README's allowScripts naming exactly the packages with scripts", () => {
    const allowScripts = advice!.allowScripts;
    expect(allowScripts).toMatchObject({ '@riaskov/mmap-io': true, 'fs-ext-extra-prebuilt': true });
    expect(install.stderr).not.toContain('install-scripts');
    const prune = JSON.parse(npm(project, 'install-scripts', 'prune', '--dry-run', '--json').stdout) as {
      allowScripts: { removed: unknown[] };
    };
    expect(prune.allowScripts.removed).toStrictEqual([]);
    // The README's commands that write the same entries name the same packages.
    const names = (allowed: boolean) => Object.keys(allowScripts).filter((name) => allowScripts[name] === allowed);
    expect(installSection).toContain(`\`npm install-scripts approve ${names(true).join(' ')}\``);
    expect(installSection).toContain(`\`npm install-scripts deny ${names(false).join(' ')}\``);
  });

  it('loads by name in a fresh process, where an MmapShare and a SharedMap set and get', () => {
    const script = `
      const { MmapShare, SharedMap } = require('mmap-share');
      const share = MmapShare.create(4096, { value: { hits: 0 } });
      share.update((value) => ({ hits: value.hits + 1 }));
      const map = SharedMap.create({ capacity: '64KB' });
      map.set('greeting', { text: 'hello' });
      const loaded = Object.keys(require.cache).filter((file) => file.startsWith(process.cwd()));
      console.log(JSON.stringify({
        share: share.get(),
        map: map.get('greeting'),
        from: require.resolve('mmap-share'),
        mmapIo: loaded.some((file) => file.endsWith('/mmap_io.node')),
        fsExt: loaded.some((file) => file.includes('/fs-ext-extra-prebuilt/')),
      }));
      share.close();
      map.close();`;
    const out = execFileSync(process.execPath, ['-e', script], { cwd: project, encoding: 'utf8' });
    expect(JSON.parse(out)).toStrictEqual({
      share: { hits: 1 },
      map: { text: 'hello' },
      from: join(project, 'node_modules/mmap-share/dist/index.js'),
      mmapIo: true,
      fsExt: true,
    });
  });
});
