// A redis-server for the tests of one file, and a fresh RedisMap on it for each test that asks, emptied and closed
// after that test.
import { afterAll, beforeAll, onTestFinished } from 'vitest';
import { RedisMap } from '../../dist/redis/index.mjs';
import { RedisServer } from './server.js';

let made = 0;

/** Starts a server before this file's tests and stops it after; `url` is where it listens once they run. */
export function redisForFile(): { readonly url: string; map(): Promise<{ map: RedisMap; name: string }> } {
  let server: RedisServer | undefined;
  beforeAll(async () => {
    server = await RedisServer.start();
  });
  afterAll(() => server?.stop());
  return {
    get url() {
      return server!.url;
    },
    async map() {
      const name = `fresh-${process.pid}-${made++}`;
      const map = await RedisMap.create(name, { url: server!.url });
      onTestFinished(async () => void (map.closed || (await map.clear(), await map.close())));
      return { map, name };
    },
  };
}
