/**
 * Determinism: every recorded supervisor history (`test/fixtures/histories/*.json`, recorded with
 * `npx tsx dev/record-histories.ts`) replays against the current workflow code without a
 * nondeterminism error, so a change that would break running supervisors fails CI. And the check
 * can fail: the same histories replayed against a deliberately changed supervisor
 * (`changed-workflows.ts`) are all rejected.
 */
import { readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DeterminismViolationError } from '@temporalio/workflow';
import { Worker, bundleWorkflowCode, type ReplayResult, type WorkflowBundle } from '@temporalio/worker';
import { historyFromJsonFile } from './history-json';

const HISTORIES = resolve(__dirname, '../../fixtures/histories');
const quiet = { trace() {}, debug() {}, info() {}, warn() {}, error() {}, log() {} };

function histories() {
  return readdirSync(HISTORIES)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => ({ workflowId: f.replace(/\.json$/, ''), history: historyFromJsonFile(join(HISTORIES, f)) }));
}

async function replay(bundle: WorkflowBundle): Promise<ReplayResult[]> {
  const results: ReplayResult[] = [];
  for await (const r of Worker.runReplayHistories({ workflowBundle: bundle }, histories())) results.push(r);
  return results;
}

const bundle = (workflowsPath: string) => bundleWorkflowCode({ workflowsPath, logger: quiet });

test('the recorded histories cover the supervisor scenarios', () => {
  const names = histories().map((h) => h.workflowId);
  expect(names).toEqual(
    expect.arrayContaining([
      'lifecycle',
      'bad-rules-then-fixed',
      'continue-as-new-run1',
      'continue-as-new-run2',
      'worker-restart',
      'children',
      'gap-fill-budget',
      'load-lanes',
    ]),
  );
  // Each is a supervisor run that reached its end (completed or continued as new).
  for (const { history } of histories()) {
    const events = history.events ?? [];
    expect(events[0]?.workflowExecutionStartedEventAttributes?.workflowType?.name).toBe('supervisorWorkflow');
    const last = events.at(-1)!;
    expect([
      last.workflowExecutionCompletedEventAttributes,
      last.workflowExecutionContinuedAsNewEventAttributes,
    ]).not.toEqual([undefined, undefined]);
  }
});

test('every recorded supervisor history replays against the current workflow code', async () => {
  const results = await replay(await bundle(require.resolve('../../../src/workflows')));
  expect(results.map((r) => r.workflowId)).toEqual(histories().map((h) => h.workflowId));
  const failures = results.filter((r) => r.error).map((r) => `${r.workflowId}: ${r.error?.message}`);
  expect(failures).toEqual([]);
});

test('a workflow change that breaks running supervisors fails the replay', async () => {
  const results = await replay(await bundle(require.resolve('./changed-workflows')));
  expect(results).toHaveLength(histories().length);
  for (const r of results) {
    expect(r.error).toBeInstanceOf(DeterminismViolationError);
  }
});
