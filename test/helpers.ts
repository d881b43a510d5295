// Fresh resources for each test, closed after it, and child processes driven through IPC handshakes.
import { type ChildProcess, execFileSync, fork, type ForkOptions, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { get, type IncomingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import { type AttachOptions, type CreateOptions, MmapShare } from '../dist/index.mjs';

const cleanups: (() => void)[] = [];

afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
});

/** Registers `cleanup` to run after the current test. */
export function defer(cleanup: () => void): void {
  cleanups.push(cleanup);
}

/** A region closed after the test. */
export function fresh<T = unknown>(size = 4096, options?: CreateOptions<T>): MmapShare<T> {
  const share = MmapShare.create<T>(size, options);
  defer(() => share.close());
  return share;
}

/** Attaches to `ref`, closed after the test. */
export function attached<T = unknown>(ref: string, options?: AttachOptions<T>): MmapShare<T> {
  const share = MmapShare.attach<T>(ref, options);
  defer(() => share.close());
  return share;
}

/** A directory removed after the test. */
export function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'mmap-share-test-'));
  defer(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export function fixture(name: string): string {
  return join(__dirname, 'fixtures', name);
}

export function openDescriptors(): number {
  return readdirSync('/proc/self/fd').length;
}

export interface RemoteError {
  code?: string;
  message: string;
}

/**
 * A child running fixtures/peer.mjs (or `script`): each call() sends one operation and resolves with its result;
 * messages that carry a `notice` instead resolve notice().
 */
export class Peer {
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  #next = 0;
  #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: RemoteError) => void }>();
  #notices: ((notice: unknown) => void)[] = [];

  constructor(options: ForkOptions = {}, script = 'peer.mjs') {
    this.child = fork(fixture(script), [], { serialization: 'advanced', stdio: 'inherit', ...options });
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve({ code, signal })));
    this.child.on('message', (message: { id: number; result?: unknown; error?: RemoteError; notice?: string }) => {
      if (message.notice !== undefined) return this.#notices.shift()?.(message);
      const waiter = this.#pending.get(message.id);
      this.#pending.delete(message.id);
      if (message.error) waiter?.reject(message.error);
      else waiter?.resolve(message.result);
    });
    defer(() => this.child.kill('SIGKILL'));
  }

  get pid(): number {
    return this.child.pid ?? 0;
  }

  call<R = unknown>(op: string, args: Record<string, unknown> = {}): Promise<R> {
    const id = this.#next++;
    return new Promise<R>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.child.send({ id, op, ...args });
    });
  }

  /** The next notice the child sends. */
  notice<N = unknown>(): Promise<N> {
    return new Promise((resolve) => this.#notices.push(resolve as (notice: unknown) => void));
  }

  async kill(): Promise<void> {
    this.child.kill('SIGKILL');
    await this.exited;
  }
}

/** Runs a script (a fixture's path, an example's) to its end and returns its exit code and output. */
export function run(
  script: string,
  args: string[] = [],
  options: ForkOptions = {},
): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  const child = fork(script, args, { stdio: 'pipe', ...options });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk));
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk));
  return new Promise((resolve) => child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
}

/**
 * Starts a server script (a web example) that prints `listening on <url>` once it serves; stop() sends SIGTERM and
 * gives what it wrote to stderr, and how it ended.
 */
export async function serve(script: string, args: string[] = []) {
  const child = fork(script, args, { stdio: 'pipe' });
  defer(() => child.kill('SIGKILL'));
  let stdout = '';
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk));
  const ended = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('close', (code, signal) => resolve({ code, signal })),
  );
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout?.on('data', (chunk: Buffer) => {
      stdout += chunk;
      const listening = /^listening on (http:\/\/\S+)/m.exec(stdout);
      if (listening) resolve(listening[1]!);
    });
    void ended.then(() => reject(new Error(`${script} ended before it listened: ${stderr}`)));
  });
  return {
    url,
    stop: async () => {
      child.kill('SIGTERM');
      return { ...(await ended), stderr };
    },
  };
}

/** A GET on a connection of its own (no keep-alive), so that a cluster hands each request to its next worker. */
export function request(
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    get(url, { agent: false, headers }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode!, headers: response.headers, body }));
    }).on('error', reject);
  });
}

/** The kernel's limit on one process's mappings, half of which mmap-share keeps for regions. */
export const maxMapCount = Number(readFileSync('/proc/sys/vm/max_map_count', 'utf8'));

/** Whether this machine lets a test make a private mount namespace (unshare -rm), to fake small or missing /dev/shm. */
export const canMakeMountNamespace = spawnSync('unshare', ['-rm', 'true']).status === 0;

/** Whether this machine lets a test run a process in a pid namespace of its own (unshare -rpf). */
export const canMakePidNamespace = spawnSync('unshare', ['-rpf', 'true']).status === 0;

/** Runs a fixture shell script in a private mount namespace and parses the JSON it prints. */
export function inMountNamespace(script: string): unknown {
  return JSON.parse(execFileSync('unshare', ['-rm', fixture(script)], { encoding: 'utf8' }));
}
