/**
 * Synchronous pull of a batch (`v1.SubscriberClient`): pull, keep the lease while the batch is being
 * written (`modifyAckDeadline`), then acknowledge. This is the "pull a batch, write it, then ack"
 * shape the load activity needs; StreamingPull would hand out messages we cannot hold for a batch.
 */
import { credentials } from '@grpc/grpc-js';
import { v1 } from '@google-cloud/pubsub';
import type { GcpConfig } from '../../config';
import type { Logger } from '../../observability/logger';
import { laneOfMessage } from '../../domain/lanes';
import { GRPC, classifyPubSubError } from './errors';

export interface PulledMessage {
  ackId: string;
  messageId: string;
  /** ISO-8601, or null when the server did not say. */
  publishTime: string | null;
  data: Buffer;
  attributes: Record<string, string>;
  deliveryAttempt: number | null;
  /** The subscription it was pulled from (unset: the subscriber's own). */
  subscription?: string;
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
  /** The subscription this subscriber reads (a load lane's). @default gcp.subscription */
  subscription?: string;
  /**
   * The dead-letter topic's subscription. Pub/Sub forwards a message there after
   * `MAX_DELIVERY_ATTEMPTS` failed deliveries (e.g. BigQuery down for a long time); every batch that
   * has room tops up from it, so a forwarded post still lands in `posts` (or `posts_dead_letter`).
   */
  deadLetterSubscription?: string;
  /**
   * Further subscriptions every batch tops up from, asked before each pull (lane 0: the retired lane
   * subscriptions it drains after a change of LOAD_LANES; see `domain/lanes.ts`).
   */
  extraSubscriptions?: () => Promise<string[]>;
  /**
   * The load lane this subscriber reads for. Messages of its own subscription whose `lane`
   * attribute names another lane are acknowledged unread and not returned: the Pub/Sub emulator
   * ignores subscription filters, and that is what a real filter does with them (`domain/lanes.ts`).
   */
  lane?: { lane: number; lanes: number };
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
  subscription = gcp.subscription,
  deadLetterSubscription,
  extraSubscriptions,
  lane,
}: BatchSubscriberDeps): BatchSubscriber {
  const sub = client ?? new v1.SubscriberClient(subscriberClientOptions(gcp.pubsubEmulatorHost));
  interface Source {
    name: string;
    path: string;
  }
  const source = (name: string): Source => ({
    name,
    path: `projects/${gcp.projectId}/subscriptions/${name}`,
  });
  const main = source(subscription);
  const dead = deadLetterSubscription ? source(deadLetterSubscription) : undefined;
  /** The subscription of every ack id pulled from anywhere but `main` (ack ids are per subscription). */
  const owner = new Map<string, Source>();
  const chunks = <T>(xs: T[], n: number) =>
    Array.from({ length: Math.ceil(xs.length / n) }, (_, i) => xs.slice(i * n, i * n + n));
  /** Runs `op` on `ackIds` in request-sized parts, per subscription that owns them. */
  const perSource = async (
    ackIds: string[],
    operation: string,
    op: (src: Source, part: string[]) => Promise<unknown>,
  ): Promise<void> => {
    const owned = new Map<Source, string[]>([[main, []]]);
    for (const id of ackIds) {
      const src = owner.get(id) ?? main;
      const list = owned.get(src);
      if (list) list.push(id);
      else owned.set(src, [id]);
    }
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
    if (owner.size > 0) for (const id of ackIds) owner.delete(id);
  };

  const self: BatchSubscriber = {
    async pull({ maxMessages, waitMs = 5000, drainWaitMs = 1000, ackDeadlineSeconds = 60 }) {
      const out: PulledMessage[] = [];
      const seen = new Set<string>();
      let otherLanes = 0;
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
          let batch = (received ?? []).flatMap((r): PulledMessage[] => {
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
                subscription: src.name,
              },
            ];
          });
          if (batch.length === 0) break;
          if (src !== main) for (const m of batch) owner.set(m.ackId, src);
          else if (lane && lane.lanes > 1) {
            const foreign = batch.filter((m) => laneOfMessage(m.attributes) !== lane.lane);
            if (foreign.length > 0) {
              await self.acknowledge(foreign.map((m) => m.ackId));
              otherLanes += foreign.length;
              batch = batch.filter((m) => laneOfMessage(m.attributes) === lane.lane);
              if (batch.length === 0) continue;
            }
          }
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
      // The side subscriptions are asked first and briefly (they are normally empty), so a
      // forwarded message never waits behind a steady stream on the main subscription.
      const sides = [
        ...(dead ? [dead] : []),
        ...(extraSubscriptions ? (await extraSubscriptions()).map(source) : []),
      ];
      for (const side of sides) {
        const before = out.length;
        await pullFrom(side, drainWaitMs);
        if (out.length > before) {
          logger.warn(
            { subscription: side.name, messages: out.length - before },
            side === dead
              ? 'loading messages Pub/Sub forwarded to the dead-letter subscription'
              : 'draining a retired lane subscription',
          );
        }
      }
      await pullFrom(main, out.length > 0 ? drainWaitMs : waitMs);
      logger.debug({ subscription: main.name, pulled: out.length, otherLanes }, 'pulled batch');
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
