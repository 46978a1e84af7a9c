/** The classifier of X filtered-stream lines: one kind per line, bad lines kept as malformed. Offline. */
import { classifyStreamLine, TRUNCATED_REASON } from '../../../src/domain/stream-line';

const AT = '2025-01-01T00:00:01.000Z';
const post = JSON.stringify({
  data: { id: '1', text: 'hello', created_at: '2025-01-01T00:00:00.000Z', author_id: '42' },
  matching_rules: [{ id: 'r1', tag: 'greetings' }],
});

test('a post line is a post, normalised', () => {
  const c = classifyStreamLine(post, AT);
  expect(c.kind).toBe('post');
  if (c.kind !== 'post') return;
  expect(c.post).toMatchObject({ id: '1', text: 'hello', received_at: AT });
});

test.each(['', '\r', '  ', '\t \r'])('a blank line (%j) is a keep-alive', (line) => {
  expect(classifyStreamLine(line, AT)).toEqual({ kind: 'keep-alive' });
});

test('an operational-disconnect message is a disconnect with its type and detail', () => {
  const line = JSON.stringify({
    errors: [
      {
        title: 'operational-disconnect',
        disconnect_type: 'UpstreamOperationalDisconnect',
        detail: 'This stream has been disconnected upstream for operational reasons.',
      },
    ],
  });
  expect(classifyStreamLine(line, AT)).toEqual({
    kind: 'disconnect',
    disconnectType: 'UpstreamOperationalDisconnect',
    detail: 'This stream has been disconnected upstream for operational reasons.',
  });
});

test('any other in-stream error is an error, with a malformed message naming it for downstream', () => {
  const line = JSON.stringify({ errors: [{ title: 'ConnectionException' }, { detail: 'slow reader' }, {}] });
  const c = classifyStreamLine(line, AT);
  expect(c).toEqual({
    kind: 'error',
    errors: [{ title: 'ConnectionException' }, { detail: 'slow reader' }, {}],
    message: {
      kind: 'malformed',
      reason: 'X stream error message: ConnectionException; slow reader; error',
      raw: line,
      received_at: AT,
    },
  });
});

test('a truncated line is never trusted, even when it would parse', () => {
  expect(classifyStreamLine(post, AT, { truncated: true })).toEqual({
    kind: 'truncated',
    message: { kind: 'malformed', reason: TRUNCATED_REASON, raw: post, received_at: AT },
  });
});

test.each([
  ['{"data":', /^invalid JSON/],
  ['[1,2]', /^not a JSON object$/],
  ['{}', /no "data" and no "errors"/],
  ['{"data":{"id":"1"}}', /^missing data\./],
])('%s is malformed with the reason', (line, reason) => {
  const c = classifyStreamLine(line, AT);
  expect(c.kind).toBe('malformed');
  if (c.kind !== 'malformed') return;
  expect(c.message).toMatchObject({ kind: 'malformed', raw: line, received_at: AT });
  expect(c.message.reason).toMatch(reason);
});
