/**
 * What one line of the X filtered stream is, decided without any I/O: a post, a keep-alive, an
 * operational disconnect (X is about to close the connection), an in-stream error message, a line
 * cut by a dropped connection (truncated), or something that cannot be normalised (malformed).
 *
 * The stream connection (`adapters/x/stream-source.ts`) acts on the answer: posts and every kind of
 * bad line go downstream (bad ones as {@link MalformedMessage}s, never dropped), a disconnect ends
 * the connection once what came before it is handed over, keep-alives only count.
 * Pure and sandbox-safe, like `normalize.ts` beside it.
 */
import { normalizeStreamLine, type StreamErrorObject } from './normalize';
import type { MalformedMessage, Post } from './post';

export type StreamLine =
  | { kind: 'post'; post: Post }
  /** An empty or whitespace-only line (X sends `\r\n` every few seconds). */
  | { kind: 'keep-alive' }
  | { kind: 'disconnect'; disconnectType: string; detail: string }
  /** An in-stream error object; `message` is what goes downstream. */
  | { kind: 'error'; errors: StreamErrorObject[]; message: MalformedMessage }
  /** The unterminated tail of a connection that ended mid-line. */
  | { kind: 'truncated'; message: MalformedMessage }
  | { kind: 'malformed'; message: MalformedMessage };

export const TRUNCATED_REASON = 'truncated: the connection ended in the middle of this line';

const BLANK = /^[ \t\r]*$/;

/**
 * Classifies one line received at `receivedAt` (ISO-8601). `truncated`: the line is what was left
 * when the connection ended without its terminator, so it is not trusted, whatever it contains.
 */
export function classifyStreamLine(
  line: string,
  receivedAt: string,
  opts: { truncated?: boolean } = {},
): StreamLine {
  const malformed = (reason: string): MalformedMessage => ({
    kind: 'malformed',
    reason,
    raw: line,
    received_at: receivedAt,
  });
  if (opts.truncated) return { kind: 'truncated', message: malformed(TRUNCATED_REASON) };
  if (BLANK.test(line)) return { kind: 'keep-alive' };
  const n = normalizeStreamLine(line, receivedAt);
  switch (n.kind) {
    case 'post':
      return { kind: 'post', post: n.post };
    case 'malformed':
      return { kind: 'malformed', message: n.message };
    case 'disconnect':
      return { kind: 'disconnect', disconnectType: n.disconnectType, detail: n.detail };
    case 'error': {
      const what = n.errors.map((e) => e.title ?? e.detail ?? 'error').join('; ');
      return { kind: 'error', errors: n.errors, message: malformed(`X stream error message: ${what}`) };
    }
  }
}
