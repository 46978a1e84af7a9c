/**
 * The one reader of the supervisor's `status` query (the dashboard's pipeline panel and the quality
 * activities' stream counters), through a Temporal client, with every way it can be unavailable
 * turned into a sentence for the operator (never started, finished, no worker answering, Temporal
 * unreachable).
 */
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { supervisorWorkflowId, type PipelineStatus } from '../../domain/pipeline-status';
import { statusQuery } from '../../workflows/messages';

/** Thrown by a `status()` implementation when the supervisor cannot answer; `message` is shown as is. */
export class SupervisorUnavailableError extends Error {
  override readonly name = 'SupervisorUnavailableError';
}

export interface SupervisorStatusOptions {
  client: Client;
  streamName: string;
  /** Temporal address, for the "unreachable" message. @default the client's namespace only */
  address?: string;
  /** Give up on the query after this long (no stream worker polling = no answer). Default 3000 ms. */
  timeoutMs?: number;
}

export function createSupervisorStatus(opts: SupervisorStatusOptions): () => Promise<PipelineStatus> {
  const workflowId = supervisorWorkflowId(opts.streamName);
  const timeoutMs = opts.timeoutMs ?? 3000;
  return async () => {
    const handle = opts.client.workflow.getHandle(workflowId);
    let description;
    try {
      description = await opts.client.connection.withDeadline(Date.now() + timeoutMs, () =>
        handle.describe(),
      );
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) {
        throw new SupervisorUnavailableError(
          `The supervisor workflow ${workflowId} is not running: it has never been started in this ` +
            'namespace. Start the stream worker (`npm run worker:stream`).',
        );
      }
      throw new SupervisorUnavailableError(
        `Cannot reach Temporal${opts.address ? ` at ${opts.address}` : ''} to ask the supervisor for its status: ${(err as Error).message}`,
      );
    }
    if (description.status.name !== 'RUNNING') {
      const when = description.closeTime ? ` since ${description.closeTime.toISOString()}` : '';
      throw new SupervisorUnavailableError(
        `The supervisor workflow ${workflowId} is not running: it is ${description.status.name.toLowerCase()}${when}.`,
      );
    }
    try {
      return await opts.client.connection.withDeadline(Date.now() + timeoutMs, () =>
        handle.query(statusQuery),
      );
    } catch (err) {
      throw new SupervisorUnavailableError(
        `The supervisor workflow ${workflowId} is running but did not answer its status query ` +
          `within ${timeoutMs / 1000} s (is the stream worker running?): ${(err as Error).message}`,
      );
    }
  };
}
