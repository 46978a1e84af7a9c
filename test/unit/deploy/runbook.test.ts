/**
 * docs/deploy-gke.md stays in step with the files it tells people to use: overlays, Secret names
 * and keys, search attributes, the start command, and the placeholders it asks them to replace.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import { SEARCH_ATTRIBUTES } from '../../../dev/stack/manager';
import { kustomize, repoRoot } from './tools';

const runbook = readFileSync(path.join(repoRoot, 'docs/deploy-gke.md'), 'utf8');
const compose = parse(readFileSync(path.join(repoRoot, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
  services: Record<string, { command?: string[] }>;
};

describe('docs/deploy-gke.md', () => {
  it('registers the same search attributes as the local stack and docker-compose', () => {
    const init = JSON.stringify(compose.services['temporal-init']!.command);
    for (const [name, type] of Object.entries(SEARCH_ATTRIBUTES)) {
      expect(runbook).toContain(`| \`${name}\` | ${type} |`);
      expect(runbook).toContain(`${name}=${type}`);
      expect(init).toContain(`${name}=${type}`);
    }
    expect(runbook).toContain('temporal operator search-attribute create');
  });

  it('starts the supervisor with the same command as docker-compose', () => {
    const start = JSON.stringify(compose.services['start-ingest']!.command);
    for (const part of [
      '--task-queue x-stream',
      '--type supervisorWorkflow',
      '--id-conflict-policy UseExisting',
    ]) {
      expect(runbook).toContain(part);
      expect(start).toContain(part);
    }
    expect(runbook).toContain(`--workflow-id x-ingest-default --input '{"streamName":"default"}'`);
  });

  it('creates the Secrets the manifests mount, with the keys they read', () => {
    const gke = JSON.stringify(kustomize('k8s/overlays/gke'));
    const mtls = JSON.stringify(kustomize('k8s/overlays/gke-mtls'));
    expect(runbook).toContain('create secret generic x-bearer-token --from-file=token=');
    expect(gke).toContain('"secretName":"x-bearer-token"');
    expect(runbook).toContain('create secret generic temporal-api-key --from-file=api-key=');
    expect(gke).toContain('"secretName":"temporal-api-key"');
    expect(runbook).toContain('create secret tls temporal-client-tls');
    expect(mtls).toContain('"secretName":"temporal-client-tls"');
  });

  it('names every overlay and applies the gke one', () => {
    for (const overlay of ['gke', 'gke-mtls', 'dev']) expect(runbook).toContain(`k8s/overlays/${overlay}`);
    expect(runbook).toContain('kubectl apply -k k8s/overlays/gke');
  });

  it('covers APIs, Pub/Sub dead letter, BigQuery, least-privilege IAM and Workload Identity', () => {
    for (const text of [
      'gcloud services enable',
      '--dead-letter-topic x-posts-dead-letter',
      'bq --location',
      'roles/pubsub.publisher',
      'roles/pubsub.subscriber',
      'roles/bigquery.dataEditor',
      'roles/bigquery.jobUser',
      'roles/iam.workloadIdentityUser',
      'svc.id.goog[$NS/x-stream-pipeline]',
      'docker buildx build',
    ]) {
      expect(runbook).toContain(text);
    }
    expect(runbook).not.toMatch(/service-accounts keys create/);
  });

  it('leaves no placeholder behind once step 8 has replaced them', () => {
    // Step 8 edits only k8s/components/gke/{settings.env,kustomization.yaml}; do the same on a copy.
    const dir = mkdtempSync(path.join(tmpdir(), 'k8s-runbook-'));
    try {
      cpSync(path.join(repoRoot, 'k8s'), path.join(dir, 'k8s'), { recursive: true });
      for (const file of ['settings.env', 'kustomization.yaml']) {
        const p = path.join(dir, 'k8s/components/gke', file);
        writeFileSync(
          p,
          readFileSync(p, 'utf8')
            .replace(/my-gcp-project/g, 'acme-x-prod')
            .replace(/my-namespace\.my-account/g, 'xstream.a1b2c')
            .replace(/us-central1-docker/g, 'europe-west1-docker')
            .replace(/^ {4}newTag: .*/m, `    digest: sha256:${'a'.repeat(64)}`),
        );
      }
      for (const overlay of ['gke', 'gke-mtls']) {
        const rendered = JSON.stringify(kustomize(path.join(dir, 'k8s/overlays', overlay)));
        expect(rendered).not.toMatch(/my-gcp-project|my-namespace|my-account/);
        expect(rendered).toContain(
          `europe-west1-docker.pkg.dev/acme-x-prod/x-stream/x-stream-pipeline@sha256:${'a'.repeat(64)}`,
        );
        expect(rendered).toContain('x-stream-pipeline@acme-x-prod.iam.gserviceaccount.com');
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
