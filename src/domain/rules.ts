/**
 * Filtered-stream rule types and the parser for the `X_RULES` setting. Sandbox-safe (no Node APIs):
 * the supervisor workflow uses these types too.
 */

/** A rule as the operator declares it. The tag labels and routes matching posts downstream. */
export interface StreamRule {
  value: string;
  tag?: string;
}

/** A rule as X stores it (with its id). */
export interface ActiveRule extends StreamRule {
  id: string;
}

/** X's limit for pay-per-use and Pro access; Enterprise allows longer rules. */
export const MAX_RULE_LENGTH = 1024;

/**
 * Parses `X_RULES`: either a JSON array of `{"value": "...", "tag": "..."}` or the short form
 * `value#tag;value#tag` (a `#` inside a value can be written as `\#`). Throws with a message that
 * names the offending rule.
 */
export function parseRules(input: string): StreamRule[] {
  const text = input.trim();
  let rules: StreamRule[];
  if (text.startsWith('[')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw new Error(`not valid JSON (${(err as Error).message})`);
    }
    if (!Array.isArray(parsed)) throw new Error('expected a JSON array of {"value","tag"} objects');
    rules = parsed.map((r: unknown, i) => {
      if (typeof r !== 'object' || r === null || typeof (r as StreamRule).value !== 'string') {
        throw new Error(`rule ${i + 1}: expected an object with a string "value"`);
      }
      const { value, tag } = r as { value: string; tag?: unknown };
      if (tag !== undefined && typeof tag !== 'string')
        throw new Error(`rule ${i + 1}: "tag" must be a string`);
      return tag === undefined ? { value } : { value, tag };
    });
  } else {
    rules = text
      .split(';')
      .map((part) => part.trim())
      .filter((part) => part.length > 0)
      .map((part) => {
        const m = /^((?:[^#\\]|\\.)*)(?:#(.*))?$/.exec(part);
        const value = (m?.[1] ?? part).replace(/\\#/g, '#').trim();
        const tag = m?.[2]?.trim();
        return tag ? { value, tag } : { value };
      });
  }
  return validateRules(rules);
}

/** Checks a rule set locally (X's `dry_run` checks the syntax); returns it normalised. */
export function validateRules(rules: readonly StreamRule[]): StreamRule[] {
  if (rules.length === 0) throw new Error('at least one rule is required');
  const seen = new Set<string>();
  return rules.map((r, i) => {
    const value = r.value.trim();
    const label = `rule ${i + 1} (${JSON.stringify(value.slice(0, 40))})`;
    if (value.length === 0) throw new Error(`rule ${i + 1}: the value is empty`);
    if (value.length > MAX_RULE_LENGTH) {
      throw new Error(`${label}: ${value.length} characters, X allows at most ${MAX_RULE_LENGTH}`);
    }
    if (seen.has(value)) throw new Error(`${label}: duplicate rule value`);
    seen.add(value);
    const tag = r.tag?.trim();
    return tag ? { value, tag } : { value };
  });
}

/** Stable key of a rule for set comparison (X treats value + tag as the identity of a rule). */
export function ruleKey(rule: StreamRule): string {
  return `${rule.value}\u0000${rule.tag ?? ''}`;
}
