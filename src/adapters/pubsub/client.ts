/**
 * The one place a `PubSub` client is built: the emulator when `PUBSUB_EMULATOR_HOST` is configured,
 * otherwise real Pub/Sub with Application Default Credentials (Workload Identity on GKE).
 */
import { PubSub } from '@google-cloud/pubsub';
import type { GcpConfig } from '../../config';

export function createPubSub(gcp: Pick<GcpConfig, 'projectId' | 'pubsubEmulatorHost'>): PubSub {
  if (gcp.pubsubEmulatorHost) {
    return new PubSub({ projectId: gcp.projectId, apiEndpoint: gcp.pubsubEmulatorHost, emulatorMode: true });
  }
  return new PubSub({ projectId: gcp.projectId });
}
