/**
 * The one Temporal connection builder, from the configuration: a local dev server (plain), a
 * self-hosted server with TLS / mTLS, or Temporal Cloud with mTLS or an API key. The workers, the
 * dashboard and the dev tools all connect through it, so they agree on TLS and on metadata. Secrets
 * are read from files or the environment by the config module and never logged.
 */
import { readFileSync } from 'node:fs';
import { Client, Connection, type ConnectionOptions } from '@temporalio/client';
import { NativeConnection, type NativeConnectionOptions } from '@temporalio/worker';
import type { TemporalConfig } from '../../config';

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

/**
 * Options shared by client and worker connections. With an API key (Temporal Cloud) the namespace
 * also travels as `temporal-namespace` metadata, which Temporal Cloud's API-key endpoints route by.
 */
export function temporalConnectionOptions(
  cfg: TemporalConfig,
): Pick<ConnectionOptions & NativeConnectionOptions, 'address' | 'tls' | 'apiKey' | 'metadata'> {
  return {
    address: cfg.address,
    tls: tlsOptions(cfg),
    ...(cfg.apiKey ? { apiKey: cfg.apiKey, metadata: { 'temporal-namespace': cfg.namespace } } : {}),
  };
}

/** The connection a `Worker` polls with. */
export async function connectWorker(cfg: TemporalConfig): Promise<NativeConnection> {
  return NativeConnection.connect(temporalConnectionOptions(cfg));
}

/** A client connected now (fails at once when Temporal is unreachable). */
export async function connectClient(cfg: TemporalConfig): Promise<Client> {
  const connection = await Connection.connect(temporalConnectionOptions(cfg));
  return new Client({ connection, namespace: cfg.namespace });
}

/** A client that connects on first use, so a process can start (and say so) while Temporal is down. */
export function lazyClient(cfg: TemporalConfig): Client {
  const connection = Connection.lazy(temporalConnectionOptions(cfg));
  return new Client({ connection, namespace: cfg.namespace });
}
