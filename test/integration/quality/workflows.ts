/** Workflows of the quality workflow test: the real quality child and a tiny parent that records verdicts. */
import { condition, setHandler } from '@temporalio/workflow';
import type { DataQualityVerdict } from '../../../src/domain/pipeline-status';
import { dataQualityVerdictSignal, statusQuery } from '../../../src/workflows/messages';

export { qualityWorkflow } from '../../../src/workflows/quality';

/** Records every verdict signalled to it; its `status` query answers with them as `lastDataQuality`. */
export async function fakeParentWorkflow(): Promise<DataQualityVerdict[]> {
  const verdicts: DataQualityVerdict[] = [];
  setHandler(dataQualityVerdictSignal, (v) => {
    verdicts.push(v);
  });
  setHandler(statusQuery, () => ({ lastDataQuality: verdicts.at(-1) }) as never);
  await condition(() => verdicts.length >= 1);
  return verdicts;
}
