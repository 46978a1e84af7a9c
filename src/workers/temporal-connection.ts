/**
 * Temporal connections from the configuration: a local dev server (plain), a self-hosted server with
 * TLS / mTLS, or Temporal Cloud with mTLS or an API key. Secrets are read from files or the
 * environment by the config module and never logged.
 */
import { readFileSync } from 'node:fs';
import { Client, Connection, type ConnectionOptions } from '@temporalio/client';
import { NativeConnection, type NativeConnectionOptions } from '@temporalio/worker';
import type { TemporalConfig } from '../config';

function tlsOptions(cfg: TemporalConfig): ConnectionOptions['tls'] {
  if (!cfg.tls) return undefined;
  const { clientCertPath, clientKeyPath, caPath } = cfg.tls;
  return {
    ...(clientCertPath && clientKeyPath
      ? { clientCertPair: { crt: readFileSync(clientCertPath), key: readFileSync(clientKeyPath) } }
      : {}),
    ...(caPath ? { serverRootCACertificate: readFileSync(caPath) } : {}),
  };
}

export async function connectWorker(cfg: TemporalConfig): Promise<NativeConnection> {
  const options: NativeConnectionOptions = {
    address: cfg.address,
    tls: tlsOptions(cfg),
    ...(cfg.apiKey ? { apiKey: cfg.apiKey } : {}),
  };
  return NativeConnection.connect(options);
}

export async function connectClient(cfg: TemporalConfig): Promise<Client> {
  const connection = await Connection.connect({
    address: cfg.address,
    tls: tlsOptions(cfg),
    ...(cfg.apiKey ? { apiKey: cfg.apiKey } : {}),
  });
  return new Client({ connection, namespace: cfg.namespace });
}
