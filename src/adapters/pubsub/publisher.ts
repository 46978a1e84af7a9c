/**
 * Publishes stream messages to the posts topic in batches, with bounded memory.
 *
 * - Batching: `PUBLISH_MAX_MESSAGES` / `PUBLISH_MAX_BYTES` / `PUBLISH_MAX_DELAY_MS` (the client's
 *   batching settings).
 * - Back-pressure: at most `PUBLISH_MAX_OUTSTANDING_MESSAGES` / `_BYTES` unacknowledged messages are
 *   held; `publish()` then waits, which pauses the X socket read (the reader awaits it). Each pause is
 *   counted and logged. X drops a reader that is slow for long (SlowReader), which the stream source
 *   then handles as a disconnect: memory stays bounded either way.
 * - Handed over = acknowledged: `onAcked` fires only when Pub/Sub returned a message id. A failed
 *   publish (after the client's own gax retries) is retried here with capped back-off until it
 *   succeeds or the publisher is closed; a message is never silently dropped.
 * - `flush()` waits until everything accepted has been acknowledged (used on pause/stop/shutdown).
 * - Wire format: `encodePost` / `encodeMalformed` are the one place a message's data and attributes
 *   are built (`publishPost` / `publishMalformed` use them); the loader reads the same attributes.
 */
import type { PubSub, Topic } from '@google-cloud/pubsub';
import {
  POST_SCHEMA_VERSION,
  type MalformedMessage,
  type Post,
  type PostAttributes,
} from '../../domain/post';
import { laneOf } from '../../domain/lanes';
import type { Logger } from '../../observability/logger';

export interface PublisherOptions {
  topic: string;
  maxMessages: number;
  maxBytes: number;
  maxDelayMs: number;
  maxOutstandingMessages: number;
  maxOutstandingBytes: number;
  logger: Logger;
  /** Called once per message when Pub/Sub acknowledged it, with the `context` given to `publish`. */
  onAcked?: (attrs: PostAttributes, messageId: string, context: string | undefined) => void;
  onBackpressure?: () => void;
  onPublishError?: (err: Error) => void;
  /** Retry back-off for failed publishes. Default 1 s doubling to 30 s. */
  retryBaseMs?: number;
  retryMaxMs?: number;
  /** LOAD_LANES: the `lane` attribute of every post is its id's lane among these. @default 1 */
  lanes?: number;
  /** Injected for tests that simulate a failing Pub/Sub. */
  publishFn?: (data: Buffer, attributes: Record<string, string>) => Promise<string>;
}

/** The topic and the batching/back-pressure settings of `PUBSUB_TOPIC` and `PUBLISH_*`. */
export function publisherSettings(config: {
  gcp: { topic: string };
  load: { lanes: number };
  publish: {
    maxMessages: number;
    maxBytes: number;
    maxDelayMs: number;
    maxOutstandingMessages: number;
    maxOutstandingBytes: number;
  };
}): Pick<
  PublisherOptions,
  | 'topic'
  | 'maxMessages'
  | 'maxBytes'
  | 'maxDelayMs'
  | 'maxOutstandingMessages'
  | 'maxOutstandingBytes'
  | 'lanes'
> {
  const p = config.publish;
  return {
    topic: config.gcp.topic,
    maxMessages: p.maxMessages,
    maxBytes: p.maxBytes,
    maxDelayMs: p.maxDelayMs,
    maxOutstandingMessages: p.maxOutstandingMessages,
    maxOutstandingBytes: p.maxOutstandingBytes,
    lanes: config.load.lanes,
  };
}

/** A message as it goes on the topic: the JSON body and its attributes. */
export interface EncodedMessage {
  data: Buffer;
  attributes: PostAttributes;
}

/**
 * A post on the wire: its JSON, with its id, its load lane (see `domain/lanes.ts`), its rule tags
 * (deduplicated) and the schema version.
 */
export function encodePost(post: Post, lanes = 1): EncodedMessage {
  const tags = post.matching_rules.map((r) => r.tag).filter((t): t is string => !!t);
  return {
    data: Buffer.from(JSON.stringify(post)),
    attributes: {
      post_id: post.id,
      lane: String(laneOf(post.id, lanes)),
      rule_tags: [...new Set(tags)].join(','),
      schema_version: String(POST_SCHEMA_VERSION),
      malformed: 'false',
    },
  };
}

/**
 * A malformed line on the wire, with `malformed=true` and the reason (at most 1,024 characters) in
 * `error`. It has no trustworthy post id: the attribute stays empty, and it goes to lane 0.
 */
export function encodeMalformed(msg: MalformedMessage): EncodedMessage {
  return {
    data: Buffer.from(JSON.stringify(msg)),
    attributes: {
      post_id: '',
      lane: '0',
      rule_tags: '',
      schema_version: String(POST_SCHEMA_VERSION),
      malformed: 'true',
      error: msg.reason.slice(0, 1024),
    },
  };
}

export class PublisherClosedError extends Error {
  override readonly name = 'PublisherClosedError';
}

export class PostPublisher {
  private readonly topic?: Topic;
  private outstandingMessages = 0;
  private outstandingBytes = 0;
  private waiters: (() => void)[] = [];
  private idleWaiters: (() => void)[] = [];
  private closed = false;
  private inBackpressure = false;
  /** Highest outstanding byte count seen (reported by the memory test and the benchmark). */
  peakOutstandingBytes = 0;

  constructor(
    pubsub: PubSub | undefined,
    private readonly opts: PublisherOptions,
  ) {
    if (!opts.publishFn) {
      if (!pubsub) throw new Error('PostPublisher needs a PubSub client or a publishFn');
      this.topic = pubsub.topic(opts.topic, {
        batching: {
          maxMessages: opts.maxMessages,
          maxBytes: opts.maxBytes,
          maxMilliseconds: opts.maxDelayMs,
        },
      });
    }
  }

  get outstanding(): { messages: number; bytes: number } {
    return { messages: this.outstandingMessages, bytes: this.outstandingBytes };
  }

  private full(): boolean {
    return (
      this.outstandingMessages >= this.opts.maxOutstandingMessages ||
      this.outstandingBytes >= this.opts.maxOutstandingBytes
    );
  }

  /**
   * Accepts a message for publishing. Resolves as soon as it is accepted (immediately unless the
   * outstanding limits are reached, then when there is room again); acknowledgement is reported
   * through `onAcked`. Rejects only when the publisher is closed.
   */
  async publish(data: Buffer, attributes: PostAttributes, context?: string): Promise<void> {
    if (this.closed) throw new PublisherClosedError('publisher is closed');
    if (this.full()) {
      if (!this.inBackpressure) {
        this.inBackpressure = true;
        this.opts.onBackpressure?.();
        this.opts.logger.warn(
          { outstandingMessages: this.outstandingMessages, outstandingBytes: this.outstandingBytes },
          'Pub/Sub is slower than the stream: pausing the reader until publishes are acknowledged',
        );
      }
      while (this.full()) {
        await new Promise<void>((resolve) => this.waiters.push(resolve));
        if (this.closed) throw new PublisherClosedError('publisher is closed');
      }
    }
    this.outstandingMessages += 1;
    this.outstandingBytes += data.length;
    this.peakOutstandingBytes = Math.max(this.peakOutstandingBytes, this.outstandingBytes);
    void this.send(data, attributes, context);
  }

  /** `publish` of a post; `onAcked` gets its `received_at` as context. */
  publishPost(post: Post): Promise<void> {
    const { data, attributes } = encodePost(post, this.opts.lanes);
    return this.publish(data, attributes, post.received_at);
  }

  /** `publish` of a malformed line; `onAcked` gets its `received_at` as context. */
  publishMalformed(msg: MalformedMessage): Promise<void> {
    const { data, attributes } = encodeMalformed(msg);
    return this.publish(data, attributes, msg.received_at);
  }

  private async send(data: Buffer, attributes: PostAttributes, context: string | undefined): Promise<void> {
    const attrs = attributes as unknown as Record<string, string>;
    let delay = this.opts.retryBaseMs ?? 1000;
    const maxDelay = this.opts.retryMaxMs ?? 30_000;
    for (;;) {
      try {
        const id = this.opts.publishFn
          ? await this.opts.publishFn(data, attrs)
          : await this.topic!.publishMessage({ data, attributes: attrs });
        this.opts.onAcked?.(attributes, id, context);
        break;
      } catch (err) {
        this.opts.onPublishError?.(err as Error);
        if (this.closed) {
          this.opts.logger.error(
            { err, postId: attributes.post_id },
            'publish failed after the publisher was closed; the post was not handed over',
          );
          break;
        }
        this.opts.logger.warn(
          { err: (err as Error).message, postId: attributes.post_id, retryInMs: delay },
          'publish failed; retrying',
        );
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, maxDelay);
      }
    }
    this.outstandingMessages -= 1;
    this.outstandingBytes -= data.length;
    if (!this.full()) {
      if (this.inBackpressure) {
        this.inBackpressure = false;
        this.opts.logger.info('publish back-pressure released');
      }
      const ws = this.waiters;
      this.waiters = [];
      for (const w of ws) w();
    }
    if (this.outstandingMessages === 0) {
      const ws = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of ws) w();
    }
  }

  /** Sends any partial batch now and waits until every accepted message is acknowledged. */
  async flush(): Promise<void> {
    await this.topic?.flush();
    if (this.outstandingMessages === 0) return;
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  /** Flushes (bounded by `timeoutMs`), then refuses further messages. Returns what was left unacked. */
  async close(timeoutMs = 30_000): Promise<{ unacked: number }> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.flush(),
      new Promise<void>((r) => {
        timer = setTimeout(r, timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    this.closed = true;
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w();
    return { unacked: this.outstandingMessages };
  }
}
