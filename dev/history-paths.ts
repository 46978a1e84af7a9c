/**
 * Recorded histories (`test/fixtures/histories/*.json`) must not carry the paths of the machine that
 * recorded them: failure stack traces name the recorder's checkout (`/work/main/src/...`). This
 * replaces each given root in every string value with `<repo>`, and leaves the event structure
 * (keys, numbers, payloads, order) as it is, so the histories replay exactly as recorded.
 *
 *   npx tsx dev/history-paths.ts /old/checkout [...]   # rewrite the stored files in place
 *
 * `dev/record-histories.ts` strips its own checkout and home directory when it writes a history.
 */
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as prettier from 'prettier';

export const REPO_PLACEHOLDER = '<repo>';

/** A copy of `value` with every occurrence of each root (longest first) in a string replaced. */
export function stripMachinePaths<T>(value: T, roots: string[]): T {
  const ordered = [...new Set(roots.filter((r) => r.length > 1).map((r) => r.replace(/\/+$/, '')))].sort(
    (a, b) => b.length - a.length,
  );
  const walk = (v: unknown): unknown => {
    if (typeof v === 'string') return ordered.reduce((s, root) => s.split(root).join(REPO_PLACEHOLDER), v);
    if (Array.isArray(v)) return v.map(walk);
    if (v && typeof v === 'object') {
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x)]));
    }
    return v;
  };
  return walk(value) as T;
}

/** The history as the repository stores it: paths stripped, formatted as `prettier --check` expects. */
export async function formatHistory(history: unknown, file: string, roots: string[]): Promise<string> {
  const options = (await prettier.resolveConfig(file)) ?? {};
  return prettier.format(JSON.stringify(stripMachinePaths(history, roots)), { ...options, filepath: file });
}

/**
 * Rewrites a stored history's text in place, keeping its formatting: the roots are replaced in the
 * text (they only occur inside string values), and the result must parse to exactly
 * `stripMachinePaths` of the original, or nothing is written.
 */
export function rewriteHistoryText(text: string, roots: string[]): string {
  const ordered = [...roots].sort((a, b) => b.length - a.length);
  const after = ordered.reduce((s, root) => s.split(root.replace(/\/+$/, '')).join(REPO_PLACEHOLDER), text);
  const expected = JSON.stringify(stripMachinePaths(JSON.parse(text) as unknown, roots));
  if (JSON.stringify(JSON.parse(after)) !== expected) {
    throw new Error('a root occurs outside string values; rewrite refused');
  }
  return after;
}

async function main(): Promise<void> {
  const roots = process.argv.slice(2);
  if (roots.length === 0) throw new Error('usage: npx tsx dev/history-paths.ts <root> [...]');
  const dir = resolve(__dirname, '../test/fixtures/histories');
  for (const name of readdirSync(dir).filter((f) => f.endsWith('.json'))) {
    const file = join(dir, name);
    const before = readFileSync(file, 'utf8');
    const after = rewriteHistoryText(before, roots);
    if (after !== before) {
      writeFileSync(file, after);
      process.stdout.write(`rewrote ${file}\n`);
    }
  }
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`history-paths failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
