/**
 * Synchronous pull of a batch (`v1.SubscriberClient`): pull, keep the lease while the batch is being
 * written (`modifyAckDeadline`), then acknowledge. This is the "pull a batch, write it, then ack"
 * shape the load activity needs; StreamingPull would hand out messages we cannot hold for a batch.
 */
import { credentials } from '@grpc/grpc-js';
import { v1 } from '@google-cloud/pubsub';
import type { GcpConfig } from '../../config';
import type { Logger } from '../../observability/logger';
import { GRPC, classifyPubSubError } from './errors';

export interface PulledMessage {
  ackId: string;
  messageId: string;
  /** ISO-8601, or null when the server did not say. */
  publishTime: string | null;
  data: Buffer;
  attributes: Record<string, string>;
  deliveryAttempt: number | null;
}

export interface PullOptions {
  /** Upper bound of messages returned. */
  maxMessages: number;
  /** How long the first pull waits for messages when the subscription is empty. @default 5000 */
  waitMs?: number;
  /** How long each further pull waits before the batch is considered complete. @default 1000 */
  drainWaitMs?: number;
  /** Lease given to each message as soon as it is pulled. @default 60 */
  ackDeadlineSeconds?: number;
}

/** The port the load activity pulls through; tests hand in a double of it. */
export interface BatchSubscriber {
  /** Pulls up to `maxMessages` (several pull calls), extending each message's lease at once. */
  pull(opts: PullOptions): Promise<PulledMessage[]>;
  modifyAckDeadline(ackIds: string[], seconds: number): Promise<void>;
  acknowledge(ackIds: string[]): Promise<void>;
  close(): Promise<void>;
}

/** Real Pub/Sub allows up to 1,000 messages per pull response, 2,500 ack ids per request. */
const MAX_PULL = 1000;
const MAX_ACK_IDS = 2500;

function toIso(ts: { seconds?: unknown; nanos?: number | null } | null | undefined): string | null {
  if (!ts || ts.seconds === undefined || ts.seconds === null) return null;
  const ms = Number(ts.seconds) * 1000 + Math.floor((ts.nanos ?? 0) / 1e6);
  return Number.isFinite(ms) ? new Date(ms).toISOString() : null;
}

export interface BatchSubscriberDeps {
  gcp: Pick<GcpConfig, 'projectId' | 'subscription' | 'pubsubEmulatorHost'>;
  /**
   * The dead-letter topic's subscription. Pub/Sub forwards a message there after
   * `MAX_DELIVERY_ATTEMPTS` failed deliveries (e.g. BigQuery down for a long time); every batch that
   * has room tops up from it, so a forwarded post still lands in `posts` (or `posts_dead_letter`).
   */
  deadLetterSubscription?: string;
  logger: Logger;
  /** Injected for tests; defaults to a client for the emulator or real Pub/Sub. */
  client?: v1.SubscriberClient;
}

/** Client options for the emulator (`host:port`, plaintext) or real Pub/Sub (ADC). */
export function subscriberClientOptions(emulatorHost: string | undefined) {
  if (!emulatorHost) return {};
  const i = emulatorHost.lastIndexOf(':');
  return {
    servicePath: emulatorHost.slice(0, i).replace(/^\[|\]$/g, ''),
    port: Number(emulatorHost.slice(i + 1)),
    sslCreds: credentials.createInsecure(),
  };
}

export function createBatchSubscriber({
  gcp,
  logger,
  client,
  deadLetterSubscription,
}: BatchSubscriberDeps): BatchSubscriber {
  const sub = client ?? new v1.SubscriberClient(subscriberClientOptions(gcp.pubsubEmulatorHost));
  const path = (name: string) => `projects/${gcp.projectId}/subscriptions/${name}`;
  const main = { name: gcp.subscription, path: path(gcp.subscription) };
  const dead = deadLetterSubscription
    ? { name: deadLetterSubscription, path: path(deadLetterSubscription) }
    : undefined;
  type Source = typeof main;
  /** Ack ids that belong to the dead-letter subscription (ack ids are per subscription). */
  const fromDead = new Set<string>();
  const chunks = <T>(xs: T[], n: number) =>
    Array.from({ length: Math.ceil(xs.length / n) }, (_, i) => xs.slice(i * n, i * n + n));
  /** Runs `op` on `ackIds` in request-sized parts, per subscription that owns them. */
  const perSource = async (
    ackIds: string[],
    operation: string,
    op: (src: Source, part: string[]) => Promise<unknown>,
  ): Promise<void> => {
    const deadIds = dead && fromDead.size > 0 ? ackIds.filter((id) => fromDead.has(id)) : [];
    const mainIds = deadIds.length > 0 ? ackIds.filter((id) => !fromDead.has(id)) : ackIds;
    const owned: [Source, string[]][] = [[main, mainIds]];
    if (dead) owned.push([dead, deadIds]);
    for (const [src, ids] of owned) {
      for (const part of chunks(ids, MAX_ACK_IDS)) {
        try {
          await op(src, part);
        } catch (err) {
          throw classifyPubSubError(err, src.name, operation);
        }
      }
    }
  };
  const forget = (ackIds: string[]) => {
    if (fromDead.size > 0) for (const id of ackIds) fromDead.delete(id);
  };

  const self: BatchSubscriber = {
    async pull({ maxMessages, waitMs = 5000, drainWaitMs = 1000, ackDeadlineSeconds = 60 }) {
      const out: PulledMessage[] = [];
      const seen = new Set<string>();
      /** Pulls from one subscription into `out` until it is empty or `out` is full. */
      const pullFrom = async (src: Source, firstWaitMs: number): Promise<void> => {
        let first = true;
        while (out.length < maxMessages) {
          const want = Math.min(MAX_PULL, maxMessages - out.length);
          let received;
          try {
            [{ receivedMessages: received }] = await sub.pull(
              { subscription: src.path, maxMessages: want },
              { timeout: first ? firstWaitMs : drainWaitMs, retry: null as never },
            );
          } catch (err) {
            if ((err as { code?: number })?.code === GRPC.DEADLINE_EXCEEDED) break;
            // Messages pulled so far are not lost: their lease expires and Pub/Sub redelivers them.
            throw classifyPubSubError(err, src.name, 'pull');
          }
          first = false;
          const batch = (received ?? []).flatMap((r): PulledMessage[] => {
            const m = r.message;
            if (!r.ackId || !m?.messageId) return [];
            return [
              {
                ackId: r.ackId,
                messageId: m.messageId,
                publishTime: toIso(m.publishTime as never),
                data: Buffer.from(m.data ?? new Uint8Array()),
                attributes: { ...(m.attributes ?? {}) },
                deliveryAttempt: r.deliveryAttempt ?? null,
              },
            ];
          });
          if (batch.length === 0) break;
          if (src === dead) for (const m of batch) fromDead.add(m.ackId);
          if (ackDeadlineSeconds)
            await self.modifyAckDeadline(
              batch.map((m) => m.ackId),
              ackDeadlineSeconds,
            );
          for (const m of batch) {
            if (!seen.has(m.ackId)) out.push(m);
            seen.add(m.ackId);
          }
        }
      };
      // The dead-letter subscription is asked first and briefly (it is normally empty), so a
      // forwarded message never waits behind a steady stream on the main subscription.
      if (dead) await pullFrom(dead, drainWaitMs);
      const forwarded = out.length;
      await pullFrom(main, forwarded > 0 ? drainWaitMs : waitMs);
      if (dead && forwarded > 0) {
        logger.warn(
          { subscription: dead.name, messages: forwarded },
          'loading messages Pub/Sub forwarded to the dead-letter subscription',
        );
      }
      logger.debug({ subscription: gcp.subscription, pulled: out.length }, 'pulled batch');
      return out;
    },

    async modifyAckDeadline(ackIds, seconds) {
      await perSource(ackIds, 'modifyAckDeadline', (src, part) =>
        sub.modifyAckDeadline({ subscription: src.path, ackIds: part, ackDeadlineSeconds: seconds }),
      );
      if (seconds === 0) forget(ackIds); // handed back: a redelivery brings a new ack id
    },

    async acknowledge(ackIds) {
      await perSource(ackIds, 'acknowledge', (src, part) =>
        sub.acknowledge({ subscription: src.path, ackIds: part }),
      );
      forget(ackIds);
    },

    async close() {
      if (!client) await sub.close();
    },
  };
  return self;
}

/**
 * Keeps the lease of `ackIds` while a batch is being written: every `intervalMs` it pushes the
 * deadline `seconds` further. Errors are reported, not thrown (the write must not be interrupted;
 * if the lease is lost, Pub/Sub redelivers and the insert-if-absent de-duplicates). Returns `stop()`.
 */
export function keepLease(
  subscriber: BatchSubscriber,
  ackIds: string[],
  {
    seconds = 60,
    intervalMs = 20_000,
    onError,
  }: { seconds?: number; intervalMs?: number; onError?: (err: unknown) => void },
): () => Promise<void> {
  let inFlight: Promise<void> = Promise.resolve();
  const timer = setInterval(() => {
    inFlight = subscriber.modifyAckDeadline(ackIds, seconds).catch((err) => onError?.(err));
  }, intervalMs);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await inFlight;
  };
}
