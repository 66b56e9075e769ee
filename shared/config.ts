/**
 * Configuration from the environment, the same variables in every folder
 * (see the table in README.md).
 *
 * readConfig() never guesses: a value that is not exactly what the variable
 * expects throws a ConfigError whose message is one line naming the variable,
 * so `PORT=80a npx tsx sse/server.ts` stops before listening with
 *
 *     PORT: expected an integer from 0 to 65535, got "80a"
 *
 * It does not read anything but the object it is given (process.env by default).
 */
import { isIP } from 'node:net';

export interface Config {
  /** TCP port; 0 lets the system pick a free one. */
  port: number;
  /** Interface to bind. */
  host: string;
  /** Largest published message, in UTF-8 bytes. */
  maxMessageBytes: number;
  /** How many messages the log keeps for replay. */
  backlog: number;
  /** How long a long-poll is held before it is answered 204. */
  pollTimeoutMs: number;
  /** Interval of SSE comments, stream keep-alives and WebSocket pings. */
  heartbeatMs: number;
  /** Origins besides the server's own that may open a WebSocket, e.g. "https://example.com". */
  allowedOrigins: string[];
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export const DEFAULTS: Readonly<Config> = Object.freeze({
  port: 8080,
  host: '127.0.0.1',
  maxMessageBytes: 65_536,
  backlog: 1_000,
  // RFC 6202 §5.5: 30 s is a safe upper bound for holding a request; stay under it.
  pollTimeoutMs: 25_000,
  // Under the 30–60 s idle cut-off of common proxies and load balancers.
  heartbeatMs: 15_000,
  allowedOrigins: [],
});

type Env = Readonly<Record<string, string | undefined>>;

export function readConfig(env: Env = process.env): Config {
  return {
    port: integer(env, 'PORT', DEFAULTS.port, 0, 65_535),
    host: host(env, 'HOST', DEFAULTS.host),
    maxMessageBytes: positive(env, 'MAX_MESSAGE_BYTES', DEFAULTS.maxMessageBytes),
    backlog: positive(env, 'BACKLOG', DEFAULTS.backlog),
    pollTimeoutMs: positive(env, 'POLL_TIMEOUT_MS', DEFAULTS.pollTimeoutMs),
    heartbeatMs: positive(env, 'HEARTBEAT_MS', DEFAULTS.heartbeatMs),
    allowedOrigins: origins(env, 'ALLOWED_ORIGINS'),
  };
}

/** Decimal digits only: "1e3", "0x10", " 8", "+8" and "8.0" are all refused. */
const DECIMAL = /^[0-9]+$/;

/**
 * setTimeout() silently turns delays above 2^31 − 1 ms into 1 ms, so the
 * positive numbers stop there rather than misbehave.
 */
const LARGEST_POSITIVE = 2 ** 31 - 1;

function positive(env: Env, name: string, fallback: number): number {
  return integer(env, name, fallback, 1, LARGEST_POSITIVE);
}

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!DECIMAL.test(raw) || value < min || value > max) {
    throw new ConfigError(`${name}: expected an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  }
  return value;
}

/** RFC 1123 §2.1 host name: dot-separated labels of letters, digits and inner hyphens. */
const HOST_NAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

function host(env: Env, name: string, fallback: string): string {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  // An IP literal, or a host name that is not a mistyped IPv4 address
  // ("999.1.1.1" would otherwise be looked up in DNS).
  const valid = isIP(raw) !== 0 || (HOST_NAME.test(raw) && !/^[0-9.]+$/.test(raw));
  if (!valid) {
    throw new ConfigError(`${name}: expected a host name or IP address, got ${JSON.stringify(raw)}`);
  }
  return raw;
}

/**
 * A comma-separated list of origins as browsers send them in the Origin header
 * (RFC 6454 §6.1): scheme "://" host [":" port], nothing else. Each one is
 * normalised through URL so that "HTTPS://Example.com:443" matches what a
 * browser sends for that page.
 */
function origins(env: Env, name: string): string[] {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return [];
  return raw.split(',').map((item) => {
    const text = item.trim();
    // Checked by shape first, because URL() forgives too much ("http:a.com",
    // "http://a.com?", "http://*.a.com" all parse). A trailing "/" is
    // accepted: browsers never send it, but people type it.
    const match = ORIGIN.exec(text);
    const port = match?.[3] === undefined ? 0 : Number(match[3]);
    const hostname = match?.[2] ?? '';
    const hostOk = hostname.startsWith('[') ? isIP(hostname.slice(1, -1)) === 6 : isIP(hostname) === 4 || HOST_NAME.test(hostname);
    if (!match || !hostOk || port > 65_535) {
      throw new ConfigError(
        `${name}: expected comma-separated origins like https://example.com:8443, got ${JSON.stringify(text)}`,
      );
    }
    return new URL(text).origin;
  });
}

/** scheme "://" host [":" port] ["/"]: the serialisation of RFC 6454 §6.1, as typed by people. */
const ORIGIN = /^(https?):\/\/(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::([0-9]{1,5}))?\/?$/i;
