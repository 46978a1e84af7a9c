/**
 * The one place a `BigQuery` client is built: the emulator when `BIGQUERY_EMULATOR_HOST` is
 * configured, otherwise real BigQuery with Application Default Credentials (Workload Identity on GKE).
 */
import { BigQuery } from '@google-cloud/bigquery';
import type { GcpConfig } from '../../config';

type RequestFn = (reqOpts: { headers?: Record<string, string> }, ...rest: unknown[]) => unknown;

export function createBigQueryClient(
  gcp: Pick<GcpConfig, 'projectId' | 'bigqueryEmulatorHost' | 'location'>,
): BigQuery {
  if (!gcp.bigqueryEmulatorHost) {
    return new BigQuery({ projectId: gcp.projectId, location: gcp.location });
  }
  const bq = new BigQuery({
    projectId: gcp.projectId,
    apiEndpoint: gcp.bigqueryEmulatorHost,
    location: gcp.location,
  });
  // Against a custom endpoint the client skips authentication and leaves `headers` undefined, which
  // makes the multipart upload of a load job (`createWriteStream`) crash inside teeny-request. Give
  // every request a headers object; nothing else changes.
  const target = bq as unknown as { makeAuthenticatedRequest: RequestFn };
  const original = target.makeAuthenticatedRequest;
  target.makeAuthenticatedRequest = Object.assign(
    (reqOpts: { headers?: Record<string, string> }, ...rest: unknown[]) =>
      original({ ...reqOpts, headers: reqOpts.headers ?? {} }, ...rest),
    original,
  );
  return bq;
}
