/**
 * The normalised, versioned `Post` record: what the stream publishes to Pub/Sub and what the load
 * workflow writes to BigQuery. Sandbox-safe (no Node APIs). Ids are always strings (64-bit).
 *
 * Versioning: adding an optional field keeps `POST_SCHEMA_VERSION` (the BigQuery column is added
 * automatically); renaming, removing or retyping a field is a breaking change and bumps it.
 */
export const POST_SCHEMA_VERSION = 1;

export interface PostAuthor {
  id: string;
  username: string | null;
  name: string | null;
  verified: boolean | null;
  followers_count: number | null;
}

export interface PostMetrics {
  retweet_count: number | null;
  reply_count: number | null;
  like_count: number | null;
  quote_count: number | null;
  bookmark_count: number | null;
  impression_count: number | null;
}

export interface PostUrl {
  url: string;
  expanded_url: string | null;
  domain: string | null;
}

export interface ReferencedPost {
  /** `replied_to`, `quoted` or `retweeted`. */
  type: string;
  id: string;
}

export interface MatchingRule {
  id: string;
  tag: string | null;
}

export interface Post {
  schema_version: number;
  id: string;
  /** Full text: `note_tweet.text` when present (long posts), else `text`. */
  text: string;
  /** ISO-8601 timestamp from X. */
  created_at: string;
  author: PostAuthor;
  lang: string | null;
  metrics: PostMetrics;
  hashtags: string[];
  mentions: string[];
  urls: PostUrl[];
  referenced_posts: ReferencedPost[];
  conversation_id: string | null;
  edit_history_ids: string[];
  possibly_sensitive: boolean | null;
  matching_rules: MatchingRule[];
  /** ISO-8601 time the stream reader received the line. */
  received_at: string;
  /** The original JSON line from X, byte-for-byte (as a string). */
  raw: string;
  /**
   * How the post was read: `search` = found by the gap fill (its `raw` is the search result
   * re-wrapped as a stream line). Absent = the filtered stream. A declared NULLABLE column of
   * `posts` (NULL = stream), not left to the loader's automatic column addition: the BigQuery
   * emulator's SQL engine never sees a column added by a table patch, so every load failed there.
   */
  source?: 'search';
}

/**
 * A line the stream received but could not normalise. It is never dropped: it is published with
 * the `malformed` attribute and lands in the dead-letter table with `reason`.
 */
export interface MalformedMessage {
  kind: 'malformed';
  reason: string;
  raw: string;
  received_at: string;
}

/** Pub/Sub message attributes set by the publisher (all strings, as Pub/Sub requires). */
export interface PostAttributes {
  post_id: string;
  /** Load lane of the post id (`domain/lanes.ts`); lane subscriptions filter on it. */
  lane: string;
  /** Comma-separated rule tags, for routing and subscription filters. */
  rule_tags: string;
  schema_version: string;
  malformed: 'true' | 'false';
  /** Set on malformed messages: why normalisation failed. */
  error?: string;
}
