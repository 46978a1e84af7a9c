/**
 * The stream connection's delivery queue: lines received from X wait here, in order, until the
 * consumer has taken the ones before them. Back-pressure: when the consumer answers a line with a
 * promise, delivery stops until it settles (the connection pauses the socket meanwhile, see
 * `onBusy`), so at most one consumer call is ever in flight and memory is bounded by what the
 * socket had already buffered.
 */

/** Lines from one chunk of the body, all received at `receivedAt` (ISO-8601). */
export interface DeliveryBatch {
  lines: readonly string[];
  receivedAt: string;
  /** The unterminated tail of a connection that ended mid-line. */
  truncated?: boolean;
}

export interface DeliveryHooks {
  /** Hands one line over; a promise means the consumer is busy until it settles. */
  deliver(line: string, receivedAt: string, truncated: boolean): PromiseLike<void> | void;
  /** Whether the connection has ended: nothing more is delivered. */
  isStopped(): boolean;
  /** The consumer is busy with a line (pause the input). */
  onBusy(): void;
  /** Everything queued has been handed over, and the connection has not ended. */
  onIdle(): void;
  /** The consumer threw or rejected: delivery stops. */
  onError(err: unknown): void;
}

function isThenable(v: unknown): v is PromiseLike<void> {
  return typeof v === 'object' && v !== null && typeof (v as PromiseLike<void>).then === 'function';
}

export class DeliveryQueue {
  private batch: DeliveryBatch = { lines: [], receivedAt: '' };
  private idx = 0;
  private readonly backlog: DeliveryBatch[] = [];
  private pumping = false;

  constructor(private readonly hooks: DeliveryHooks) {}

  /** True from `start()` until everything queued has been handed over (or delivery failed). */
  get busy(): boolean {
    return this.pumping;
  }

  /** Lines received but not handed over yet. */
  get undelivered(): number {
    return this.batch.lines.length - this.idx + this.backlog.reduce((n, b) => n + b.lines.length, 0);
  }

  /** Queues a batch (delivered by the running or the next `start()`). */
  push(batch: DeliveryBatch): void {
    this.backlog.push(batch);
  }

  /** Delivers what is queued unless a delivery is already under way. */
  start(): void {
    if (this.pumping) return;
    this.pumping = true;
    this.pump();
  }

  /** Drains the current batch then the backlog; stops at a pending consumer promise. */
  private pump(): void {
    for (;;) {
      while (this.idx < this.batch.lines.length) {
        if (this.hooks.isStopped()) return;
        let r: PromiseLike<void> | void;
        try {
          r = this.hooks.deliver(
            this.batch.lines[this.idx++]!,
            this.batch.receivedAt,
            this.batch.truncated === true,
          );
        } catch (err) {
          this.hooks.onError(err);
          return;
        }
        if (isThenable(r)) {
          this.pumping = true;
          this.hooks.onBusy();
          r.then(
            () => this.pump(),
            (err: unknown) => this.hooks.onError(err),
          );
          return;
        }
      }
      const next = this.backlog.shift();
      if (!next) break;
      this.batch = next;
      this.idx = 0;
    }
    this.pumping = false;
    if (this.hooks.isStopped()) return;
    this.hooks.onIdle();
  }
}
