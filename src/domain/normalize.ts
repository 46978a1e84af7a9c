/**
 * Turns one line of the X filtered stream into a versioned {@link Post}, a {@link MalformedMessage},
 * or a protocol message the stream source handles itself (operational disconnects, in-stream errors).
 *
 * Pure and sandbox-safe: no Node APIs (not even the `URL` global), so workflows may import it.
 * Lines that cannot be normalised are returned as `malformed` with a reason naming the problem;
 * they are never dropped.
 */
import {
  POST_SCHEMA_VERSION,
  type MalformedMessage,
  type MatchingRule,
  type Post,
  type PostAuthor,
  type PostMetrics,
  type PostUrl,
  type ReferencedPost,
} from './post';

/** An in-stream error object as X sends it (all fields optional: X may add or omit any). */
export interface StreamErrorObject {
  title?: string;
  detail?: string;
  type?: string;
  disconnect_type?: string;
  [key: string]: unknown;
}

export type NormalizedLine =
  | { kind: 'post'; post: Post }
  | { kind: 'malformed'; message: MalformedMessage }
  /** `operational-disconnect`: X closes the connection after it; the source reconnects. */
  | { kind: 'disconnect'; disconnectType: string; detail: string; raw: string }
  /** Any other message with `errors` and no `data` (e.g. a rule or provisioning problem). */
  | { kind: 'error'; errors: StreamErrorObject[]; raw: string };

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const bool = (v: unknown): boolean | null => (typeof v === 'boolean' ? v : null);
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

/** Host name of an absolute URL, lower-cased, without userinfo or port (no `URL` global needed). */
export function urlDomain(url: string | null): string | null {
  if (url === null) return null;
  const m = /^[a-z][a-z0-9+.-]*:\/\/(?:[^@/?#]*@)?(\[[^\]]*\]|[^:/?#]*)/i.exec(url);
  const host = m?.[1]?.toLowerCase();
  return host ? host : null;
}

function malformed(reason: string, raw: string, receivedAt: string): NormalizedLine {
  return { kind: 'malformed', message: { kind: 'malformed', reason, raw, received_at: receivedAt } };
}

function author(includes: unknown, authorId: string): PostAuthor {
  const users = isObject(includes) ? arr(includes.users) : [];
  const user = users.find((u): u is Json => isObject(u) && u.id === authorId);
  const metrics = user && isObject(user.public_metrics) ? user.public_metrics : undefined;
  return {
    id: authorId,
    username: str(user?.username),
    name: str(user?.name),
    verified: bool(user?.verified),
    followers_count: num(metrics?.followers_count),
  };
}

function metrics(data: Json): PostMetrics {
  const m = isObject(data.public_metrics) ? data.public_metrics : {};
  return {
    retweet_count: num(m.retweet_count),
    reply_count: num(m.reply_count),
    like_count: num(m.like_count),
    quote_count: num(m.quote_count),
    bookmark_count: num(m.bookmark_count),
    impression_count: num(m.impression_count),
  };
}

function entityStrings(entities: Json, key: string, field: string): string[] {
  const out: string[] = [];
  for (const e of arr(entities[key])) {
    const v = isObject(e) ? str(e[field]) : null;
    if (v !== null) out.push(v);
  }
  return out;
}

function urls(entities: Json): PostUrl[] {
  const out: PostUrl[] = [];
  for (const e of arr(entities.urls)) {
    if (!isObject(e)) continue;
    const url = str(e.url);
    if (url === null) continue;
    const expanded = str(e.expanded_url);
    out.push({ url, expanded_url: expanded, domain: urlDomain(expanded ?? url) });
  }
  return out;
}

function referenced(data: Json): ReferencedPost[] {
  const out: ReferencedPost[] = [];
  for (const r of arr(data.referenced_tweets)) {
    if (!isObject(r)) continue;
    const type = str(r.type);
    const id = str(r.id);
    if (type !== null && id !== null) out.push({ type, id });
  }
  return out;
}

function matchingRules(msg: Json): MatchingRule[] {
  const out: MatchingRule[] = [];
  for (const r of arr(msg.matching_rules)) {
    if (!isObject(r)) continue;
    // Rule ids are strings on the wire; accept a number defensively but never round-trip it as one.
    const id = typeof r.id === 'string' ? r.id : typeof r.id === 'number' ? String(r.id) : null;
    if (id !== null) out.push({ id, tag: str(r.tag) });
  }
  return out;
}

/** The fields a Post cannot exist without, checked in this order. */
const REQUIRED = ['id', 'text', 'created_at', 'author_id'] as const;

/**
 * Normalises one stream line (without its line terminator). `receivedAt` is the ISO-8601 time the
 * reader received it. Never throws.
 */
export function normalizeStreamLine(line: string, receivedAt: string): NormalizedLine {
  let msg: unknown;
  try {
    msg = JSON.parse(line);
  } catch (err) {
    return malformed(`invalid JSON: ${(err as Error).message}`, line, receivedAt);
  }
  if (!isObject(msg)) return malformed('not a JSON object', line, receivedAt);

  const data = msg.data;
  if (data === undefined || data === null) {
    const errors = arr(msg.errors).filter(isObject) as StreamErrorObject[];
    if (errors.length === 0) return malformed('no "data" and no "errors" in the message', line, receivedAt);
    const disconnect = errors.find(
      (e) => e.title === 'operational-disconnect' || typeof e.disconnect_type === 'string',
    );
    if (disconnect) {
      return {
        kind: 'disconnect',
        disconnectType: str(disconnect.disconnect_type) ?? 'unknown',
        detail: str(disconnect.detail) ?? '',
        raw: line,
      };
    }
    return { kind: 'error', errors, raw: line };
  }
  if (!isObject(data)) return malformed('"data" is not an object', line, receivedAt);
  for (const field of REQUIRED) {
    const v = data[field];
    if (v === undefined || v === null) return malformed(`missing data.${field}`, line, receivedAt);
    if (typeof v !== 'string') return malformed(`data.${field} is not a string`, line, receivedAt);
  }
  const id = data.id as string;
  const authorId = data.author_id as string;

  // Long posts: `text` is truncated and the full text (and its entities) are in `note_tweet`.
  const note = isObject(data.note_tweet) ? data.note_tweet : undefined;
  const noteText = str(note?.text);
  const entities =
    noteText !== null && isObject(note?.entities)
      ? note.entities
      : isObject(data.entities)
        ? data.entities
        : {};

  const post: Post = {
    schema_version: POST_SCHEMA_VERSION,
    id,
    text: noteText ?? (data.text as string),
    created_at: data.created_at as string,
    author: author(msg.includes, authorId),
    lang: str(data.lang),
    metrics: metrics(data),
    hashtags: entityStrings(entities, 'hashtags', 'tag'),
    mentions: entityStrings(entities, 'mentions', 'username'),
    urls: urls(entities),
    referenced_posts: referenced(data),
    conversation_id: str(data.conversation_id),
    edit_history_ids: arr(data.edit_history_tweet_ids).filter((x): x is string => typeof x === 'string'),
    possibly_sensitive: bool(data.possibly_sensitive),
    matching_rules: matchingRules(msg),
    received_at: receivedAt,
    raw: line,
  };
  return { kind: 'post', post };
}
