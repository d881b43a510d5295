// What regions leave behind: nothing once closed and collected.
import { describe, expect, it } from 'vitest';
import { MmapShare } from '../dist/index.mjs';
import { fixture, run } from './helpers.js';

describe('resources', () => {
  it('1000 create/attach/close cycles leave no descriptors, no files, and no mappings after GC', async () => {
    const { code, stdout, stderr } = await run(fixture('cycles.mjs'), ['1000'], { execArgv: ['--expose-gc'] });
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const { before, afterClose, afterGc } = JSON.parse(stdout);
    expect(afterClose.fds).toBe(before.fds);
    expect(afterClose.shmFiles).toBe(before.shmFiles);
    expect(afterGc.mappings).toBe(before.mappings);
  });

  it('close() is idempotent, and so is disposal with `using`', () => {
    const share = MmapShare.create(64);
    {
      using scoped = MmapShare.attach(share.handle);
      scoped.set('inside');
    }
    share.close();
    share.close();
    expect(share.closed).toBe(true);
  });
});
