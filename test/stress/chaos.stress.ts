// Chaos: writers killed with SIGKILL at random instants inside set, update and lock sections; after every kill the
// value must be whole and the lock free.
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect, it } from 'vitest';
import { defer, fixture, fresh } from '../helpers.js';
import { figure, stress } from './options.js';

it(`chaos: ${stress.kills} kills leave no torn value and no stuck lock`, async () => {
  const bytes = 64 * 1024;
  const share = fresh<{ seq: number; fill: Uint8Array; tail: string }>(bytes + 1024);
  let torn = 0;
  let stuck = 0;
  let insideLock = 0;
  for (let kill = 1; kill <= stress.kills; kill++) {
    const child = fork(fixture('writer.mjs'), [share.handle, String(bytes)], { stdio: 'inherit' });
    defer(() => child.kill('SIGKILL'));
    await once(child, 'message');
    await sleep(Math.random() * 10);
    child.kill('SIGKILL');
    await once(child, 'exit');

    const lock = share.tryLock();
    if (lock === undefined) {
      stuck++;
      continue;
    }
    if (lock.ownerDied) insideLock++;
    const value = share.get();
    share.unlock();
    const whole = value?.fill.length === bytes && value.fill.every((byte) => byte === value.seq % 251);
    if (!whole || value?.tail !== `end-${value?.seq}`) torn++;
    if (kill % 100 === 0) process.stderr.write(`chaos: ${kill}/${stress.kills} kills\n`);
  }
  figure(`chaos: ${stress.kills} kills (${insideLock} inside the lock), ${torn} torn values, ${stuck} stuck locks`);
  expect({ torn, stuck }).toStrictEqual({ torn: 0, stuck: 0 });
});
