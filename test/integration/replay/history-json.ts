/**
 * Loads a workflow history saved as JSON by `temporal workflow show --output json` (or the Web UI's
 * download; `dev/record-histories.ts` writes them) into the `History` object `Worker.runReplayHistories`
 * takes.
 *
 * Not `historyFromJSON` from `@temporalio/common`: in this dependency tree `@temporalio/common` and
 * `@temporalio/proto` each get their own copy of protobufjs 8 (the root holds google-gax's
 * protobufjs 7), and `historyFromJSON` fails with "type must be a Type" (an `instanceof` across the
 * two copies); `runReplayHistories` calls it for JSON histories. So the conversion here uses the
 * protobufjs copy that `@temporalio/proto` itself resolves, whichever that is.
 */
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import * as proto from '@temporalio/proto';
import { patchProtobufRoot } from '@temporalio/proto/lib/patch-protobuf-root';
import type { History } from '@temporalio/common/lib/proto-utils';

interface ProtoJson {
  fromJson(type: unknown, json: unknown, options: { ignoreUnknownFields: boolean }): unknown;
}

const protoDir = dirname(require.resolve('@temporalio/proto/package.json'));
const protojson = require(require.resolve('protobufjs/ext/protojson', { paths: [protoDir] })) as ProtoJson;
const historyType = (patchProtobufRoot(proto) as unknown as { lookupType(name: string): unknown }).lookupType(
  'temporal.api.history.v1.History',
);

export function historyFromJsonFile(path: string): History {
  const json = JSON.parse(readFileSync(path, 'utf8')) as { events?: unknown };
  if (!Array.isArray(json.events) || json.events.length === 0) {
    throw new TypeError(`${path}: not a workflow history (no events)`);
  }
  const history = protojson.fromJson(historyType, json, { ignoreUnknownFields: true }) as History | null;
  if (!history) throw new TypeError(`${path}: invalid history`);
  return history;
}
