// fetch() within one instance: the calls that ask for the same key join one run, and each waits for it under its own
// timeout and signal. The run is aborted only once every call waiting for it has given up. Both map backends use it.
import { shareError } from './errors.js';
import { armDeadline } from './wait.js';

/** What a run tells the calls waiting for it, and the signal that aborts it. */
export interface FlightControl {
  readonly signal: AbortSignal;
  /** The run now computes the value itself: the call that started it no longer times out. */
  computing(): void;
  /** The run now waits for someone else's computation, described as `what` for a timeout's message. */
  waitingFor(what: string): void;
}

// One run, and how many calls wait for it.
class Flight<R> implements FlightControl {
  readonly #controller = new AbortController();
  readonly signal = this.#controller.signal;
  readonly done: Promise<R>;
  waiting = 0;
  // Whether a call was given the value yet: the first takes what the run counted, the others are coalesced.
  taken = false;
  computingHere = false;
  awaited = 'its value';

  constructor(run: (control: FlightControl) => Promise<R>, ended: () => void) {
    // Started on a later tick, so that a run that throws at once rejects `done` rather than join().
    this.done = Promise.resolve()
      .then(() => run(this))
      .finally(ended);
  }

  computing(): void {
    this.computingHere = true;
    this.awaited = 'its computation by another call of this instance';
  }

  waitingFor(what: string): void {
    this.computingHere = false;
    this.awaited = what;
  }

  abort(reason: unknown): void {
    this.#controller.abort(reason);
  }
}

/** The runs under way, by key. */
export class Flights<R> {
  readonly #flights = new Map<string, Flight<R>>();
  readonly #joined: () => void | Promise<void>;

  /**
   * `joined` counts each call given a run's value but the first (the run counted that one itself), before the call
   * resolves and still under its timeout and signal.
   */
  constructor(joined: () => void | Promise<void>) {
    this.#joined = joined;
  }

  /**
   * The result of `run` for `key`, started now unless a run for it is under way. This call alone rejects with
   * ERR_LOCK_TIMEOUT after `timeout` ms spent waiting for a computation it did not run, and with the reason of
   * `signal` when that aborts. A call that joined a run giving undefined (a compute that stored nothing) starts a run
   * of its own, so that a call whose compute always gives a value never gets undefined.
   */
  join(
    key: string,
    timeout: number,
    signal: AbortSignal | undefined,
    run: (control: FlightControl) => Promise<R>,
  ): Promise<R> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    const current = this.#flights.get(key);
    // A run aborted because every call gave up is left to end on its own: a later call starts afresh.
    const started = current === undefined || current.signal.aborted;
    const joined = started ? this.#start(key, run) : current;
    joined.waiting++;
    const deadline = performance.now() + timeout;
    return new Promise<R>((resolve, reject) => {
      let settled = false;
      const leave = (settle: () => void) => {
        if (settled) return;
        settled = true;
        cancel();
        signal?.removeEventListener('abort', onAbort);
        joined.waiting--;
        settle();
      };
      const giveUp = (reason: unknown) =>
        leave(() => {
          if (joined.waiting === 0) joined.abort(reason);
          reject(reason);
        });
      const onAbort = () => giveUp(signal!.reason);
      const onTimeout = () => {
        // The call that started the run does not time out on the computation it runs itself.
        if (started && joined.computingHere) return;
        giveUp(
          shareError('ERR_LOCK_TIMEOUT', `fetch(${JSON.stringify(key)}) waited ${timeout} ms for ${joined.awaited}`),
        );
      };
      const cancel = armDeadline(deadline, onTimeout);
      signal?.addEventListener('abort', onAbort, { once: true });
      joined.done.then(
        async (value) => {
          if (settled) return;
          if (value === undefined && !started) {
            return leave(() => resolve(this.join(key, Math.max(0, deadline - performance.now()), signal, run)));
          }
          if (joined.taken) await this.#joined();
          joined.taken = true;
          leave(() => resolve(value));
        },
        (error: unknown) => leave(() => reject(error)),
      );
    });
  }

  #start(key: string, run: (control: FlightControl) => Promise<R>): Flight<R> {
    const flight: Flight<R> = new Flight(run, () => {
      if (this.#flights.get(key) === flight) this.#flights.delete(key);
    });
    this.#flights.set(key, flight);
    return flight;
  }
}
