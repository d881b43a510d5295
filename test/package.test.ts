// The package as users load it: by name, from CommonJS and from ESM, both reaching the same classes.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(__dirname, '..');

describe('package entry points', () => {
  it('loads with require() and import(), which share one MmapShare, one SharedMap, one SharedQueue and one error class', () => {
    const script = `
      const cjs = require('mmap-share');
      import('mmap-share').then((esm) => {
        const share = cjs.MmapShare.create(64, { value: 'both' });
        let error;
        try { esm.MmapShare.create(0) } catch (e) { error = e }
        console.log(JSON.stringify({
          sameClass: cjs.MmapShare === esm.MmapShare && cjs.SharedMap === esm.SharedMap && cjs.SharedQueue === esm.SharedQueue,
          value: esm.MmapShare.attach(share.handle).get(),
          errorMatches: error instanceof cjs.MmapShareError && error.code === 'ERR_BAD_SIZE',
          exports: Object.keys(esm).sort(),
        }));
      });`;
    const out = execFileSync(process.execPath, ['-e', script], { cwd: root, encoding: 'utf8' });
    expect(JSON.parse(out)).toStrictEqual({
      sameClass: true,
      value: 'both',
      errorMatches: true,
      exports: ['MAX_CAPACITY', 'MAX_SIZE', 'MIN_CAPACITY', 'MmapShare', 'MmapShareError', 'SharedMap', 'SharedQueue'],
    });
  });

  it('keeps the Redis client out of shared-memory users, and loads it through mmap-share/redis', () => {
    const script = `
      require('mmap-share');
      const loadedRedis = Object.keys(require.cache).some((file) => file.includes('/node_modules/redis/'));
      const cjs = require('mmap-share/redis');
      import('mmap-share/redis').then((esm) => {
        console.log(JSON.stringify({
          loadedRedis,
          sameClass: cjs.RedisShare === esm.RedisShare && cjs.RedisMap === esm.RedisMap && cjs.RedisQueue === esm.RedisQueue,
          sameError: esm.MmapShareError === require('mmap-share').MmapShareError,
          exports: Object.keys(esm).sort(),
        }));
      });`;
    const out = execFileSync(process.execPath, ['-e', script], { cwd: root, encoding: 'utf8' });
    expect(JSON.parse(out)).toStrictEqual({
      loadedRedis: false,
      sameClass: true,
      sameError: true,
      exports: ['MmapShareError', 'RedisMap', 'RedisQueue', 'RedisShare'],
    });
  });

  it('loads the native addons only when the first region is made', () => {
    const script = `
      const addons = () => Object.keys(require.cache).filter((file) => /mmap-io|fs-ext/.test(file)).length > 0;
      const { MmapShare } = require('mmap-share');
      import('mmap-share').then(() => {
        const before = addons();
        MmapShare.create(64).close();
        console.log(JSON.stringify({ before, after: addons() }));
      });`;
    const out = execFileSync(process.execPath, ['-e', script], { cwd: root, encoding: 'utf8' });
    expect(JSON.parse(out)).toStrictEqual({ before: false, after: true });
  });

  it('loads mmap-share/redis, from CommonJS and ESM, on a host where the native addons did not build', () => {
    const script = `
      const cjs = require('mmap-share/redis');
      import('mmap-share/redis').then((esm) => {
        const addons = Object.keys(require.cache).filter((file) => /mmap-io|fs-ext/.test(file));
        console.log(JSON.stringify({ addons, classes: typeof cjs.RedisMap + typeof esm.RedisShare + typeof esm.RedisQueue }));
      });`;
    const broken = join(__dirname, 'fixtures', 'no-addons.cjs');
    const out = execFileSync(process.execPath, ['-r', broken, '-e', script], { cwd: root, encoding: 'utf8' });
    expect(JSON.parse(out)).toStrictEqual({ addons: [], classes: 'functionfunctionfunction' });
  });
});

describe('the source tree', () => {
  const lib = join(root, 'lib');
  const files = readdirSync(lib, { recursive: true, encoding: 'utf8' }).filter((file) => file.endsWith('.ts'));
  const imports = new Map(
    files.map((file) => {
      const text = readFileSync(join(lib, file), 'utf8');
      const targets = [...text.matchAll(/^(?:import|export)[^;]*? from '(\.[^']+)\.js';/gms)].map((match) =>
        relative(lib, resolve(lib, dirname(file), match[1]! + '.ts')),
      );
      return [file, targets];
    }),
  );

  it('has no circle of imports, type imports included', () => {
    const circles: string[] = [];
    const done = new Set<string>();
    const visit = (file: string, path: string[]) => {
      if (path.includes(file)) return void circles.push([...path.slice(path.indexOf(file)), file].join(' -> '));
      if (done.has(file)) return;
      for (const target of imports.get(file) ?? []) visit(target, [...path, file]);
      done.add(file);
    };
    for (const file of files) visit(file, []);
    expect([...imports.values()].flat().every((target) => imports.has(target))).toBe(true);
    expect(circles).toStrictEqual([]);
  });

  it('keeps every file under 450 lines, opening with a line on what lives there', () => {
    const misfits = files.filter((file) => {
      const lines = readFileSync(join(lib, file), 'utf8').split('\n');
      return lines.length > 450 || !/^(#!.*\n)?\/\/ \S/.test(lines.slice(0, 2).join('\n'));
    });
    expect(misfits).toStrictEqual([]);
  });

  it.each([
    ['keyv', 'KeyvStore', 'keyv'],
    ['rate-limit', 'RateLimitStore', 'express-rate-limit'],
    ['session', 'SessionStore', 'express-session'],
  ])(
    'loads mmap-share/%s from CommonJS and ESM, one %s for both, loading no other peer and no addon',
    (entry, name) => {
      const script = `
      const cjs = require('mmap-share/${entry}');
      import('mmap-share/${entry}').then((esm) => {
        const loaded = Object.keys(require.cache);
        const peers = ['redis', 'keyv', 'express-rate-limit', 'express-session'].filter((peer) =>
          loaded.some((file) => file.includes('/node_modules/' + peer + '/')),
        );
        console.log(JSON.stringify({
          sameClass: cjs.${name} === esm.${name},
          sameError: esm.MmapShareError === require('mmap-share').MmapShareError,
          exports: Object.keys(esm).sort(),
          peers,
          addons: loaded.some((file) => /mmap-io|fs-ext/.test(file)),
        }));
      });`;
      const out = execFileSync(process.execPath, ['-e', script], { cwd: root, encoding: 'utf8' });
      expect(JSON.parse(out)).toStrictEqual({
        sameClass: true,
        sameError: true,
        exports: ['MmapShareError', name].sort(),
        peers: entry === 'session' ? ['express-session'] : [],
        addons: false,
      });
    },
  );

  it('says which package to install when mmap-share/session is loaded without express-session', () => {
    const script = `
      let caught;
      try { require('mmap-share/session') } catch (error) { caught = error }
      console.log(JSON.stringify({ code: caught.code, message: caught.message, cause: caught.cause.code }));`;
    const env = { ...process.env, MISSING_PEER: 'express-session' };
    const broken = join(__dirname, 'fixtures', 'no-peer.cjs');
    const out = execFileSync(process.execPath, ['-r', broken, '-e', script], { cwd: root, encoding: 'utf8', env });
    expect(JSON.parse(out)).toStrictEqual({
      code: 'ERR_MISSING_PEER',
      message: 'mmap-share/session needs the express-session package, its peer: npm install express-session',
      cause: 'MODULE_NOT_FOUND',
    });
  });
});
