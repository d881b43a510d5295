// A real redis-server for the Redis suites: started on a free loopback port, stopped after; without persistence, or
// with every write logged before it is acknowledged, for the suites that crash it and start it again.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';

export const hasRedisServer = spawnSync('redis-server', ['--version']).status === 0;

async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  return port;
}

/** A redis-server of this test run's own; stop() and start() again to test faults. */
export class RedisServer {
  readonly port: number;
  readonly #dir: string | undefined;
  #process: ChildProcess | undefined;

  private constructor(port: number, dir: string | undefined) {
    this.port = port;
    this.#dir = dir;
  }

  /** Starts a server; `durable` logs every write (appendfsync always) in a directory of its own. */
  static async start(durable = false): Promise<RedisServer> {
    if (!hasRedisServer) throw new Error('redis-server is not installed: apt-get install redis-server');
    const dir = durable ? mkdtempSync('/dev/shm/mmap-share-redis-') : undefined;
    const server = new RedisServer(await freePort(), dir);
    await server.start();
    return server;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const persistence = this.#dir
      ? ['--dir', this.#dir, '--appendonly', 'yes', '--appendfsync', 'always']
      : ['--appendonly', 'no'];
    const child = spawn(
      'redis-server',
      ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', ...persistence, '--loglevel', 'warning'],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    );
    this.#process = child;
    // It is ready when a connection is accepted.
    for (let tries = 0; ; tries++) {
      const ping = spawnSync('redis-cli', ['-p', String(this.port), 'ping'], { encoding: 'utf8' });
      if (ping.stdout.trim() === 'PONG') return;
      if (tries > 200 || child.exitCode !== null) throw new Error(`redis-server on port ${this.port} did not start`);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }

  /** Kills the server, as a crash would. */
  async stop(): Promise<void> {
    const child = this.#process;
    if (child === undefined || child.exitCode !== null) return;
    child.kill('SIGKILL');
    await once(child, 'exit');
  }

  /** Kills the server and removes its files. */
  async remove(): Promise<void> {
    await this.stop();
    if (this.#dir) rmSync(this.#dir, { recursive: true, force: true });
  }
}
