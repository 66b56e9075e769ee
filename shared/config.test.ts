import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, DEFAULTS, readConfig } from './config.ts';

describe('readConfig', () => {
  test('an empty environment gives the contract defaults', () => {
    assert.deepEqual(readConfig({}), {
      port: 8080,
      host: '127.0.0.1',
      maxMessageBytes: 65536,
      backlog: 1000,
      pollTimeoutMs: 25000,
      heartbeatMs: 15000,
      allowedOrigins: [],
    });
    assert.deepEqual(readConfig({}), { ...DEFAULTS });
  });

  test('every variable is read', () => {
    const config = readConfig({
      PORT: '0',
      HOST: '::1',
      MAX_MESSAGE_BYTES: '10',
      BACKLOG: '3',
      POLL_TIMEOUT_MS: '100',
      HEARTBEAT_MS: '50',
      ALLOWED_ORIGINS: 'https://a.example, http://b.example:8000',
    });
    assert.deepEqual(config, {
      port: 0,
      host: '::1',
      maxMessageBytes: 10,
      backlog: 3,
      pollTimeoutMs: 100,
      heartbeatMs: 50,
      allowedOrigins: ['https://a.example', 'http://b.example:8000'],
    });
  });

  test('PORT goes from 0 to 65535', () => {
    assert.equal(readConfig({ PORT: '65535' }).port, 65535);
    assert.throws(() => readConfig({ PORT: '65536' }), /^ConfigError: PORT: expected an integer from 0 to 65535, got "65536"$/);
  });

  for (const [name, value] of [
    ['PORT', '80a'],
    ['PORT', '-1'],
    ['PORT', '8.0'],
    ['PORT', '1e3'],
    ['PORT', ' 80'],
    ['PORT', '0x50'],
    ['MAX_MESSAGE_BYTES', '0'],
    ['MAX_MESSAGE_BYTES', 'lots'],
    ['BACKLOG', '0'],
    ['BACKLOG', '-5'],
    ['POLL_TIMEOUT_MS', '0'],
    ['POLL_TIMEOUT_MS', '2147483648'],
    ['HEARTBEAT_MS', '1.5'],
    ['HOST', 'http://localhost'],
    ['HOST', 'local host'],
    ['ALLOWED_ORIGINS', 'example.com'],
    ['ALLOWED_ORIGINS', 'https://a.example/path'],
    ['ALLOWED_ORIGINS', 'https://a.example,,https://b.example'],
    ['ALLOWED_ORIGINS', 'ftp://a.example'],
    ['ALLOWED_ORIGINS', 'https://user@a.example'],
    ['ALLOWED_ORIGINS', 'https://a.example?x=1'],
    ['ALLOWED_ORIGINS', 'http:a.com'],
    ['ALLOWED_ORIGINS', 'http://a.com?'],
    ['ALLOWED_ORIGINS', 'http://a.com#'],
    ['ALLOWED_ORIGINS', 'http://*.a.com'],
    ['ALLOWED_ORIGINS', 'http://a.com:'],
    ['ALLOWED_ORIGINS', 'http://a.com:65536'],
    ['ALLOWED_ORIGINS', 'http://a..com'],
    ['ALLOWED_ORIGINS', 'http://[::1'],
    ['HOST', '999.999.1.1'],
    ['HOST', '-bad.example'],
    ['HOST', 'a_b.example'],
  ] as const) {
    test(`${name}=${JSON.stringify(value)} stops start-up with one line naming ${name}`, () => {
      assert.throws(
        () => readConfig({ [name]: value }),
        (error: unknown) => {
          assert.ok(error instanceof ConfigError);
          assert.ok(error.message.startsWith(`${name}: expected `), error.message);
          assert.ok(!error.message.includes('\n'));
          return true;
        },
      );
    });
  }

  test('an empty value means the default', () => {
    assert.equal(readConfig({ PORT: '', ALLOWED_ORIGINS: ' ' }).port, 8080);
    assert.deepEqual(readConfig({ ALLOWED_ORIGINS: ' ' }).allowedOrigins, []);
  });

  test('origins are normalised the way browsers send them', () => {
    assert.deepEqual(readConfig({ ALLOWED_ORIGINS: 'HTTPS://Example.COM:443/' }).allowedOrigins, ['https://example.com']);
    assert.deepEqual(readConfig({ ALLOWED_ORIGINS: 'http://[::1]:8080,http://127.0.0.1' }).allowedOrigins, [
      'http://[::1]:8080',
      'http://127.0.0.1',
    ]);
  });

  test('HOST takes IP literals and host names', () => {
    for (const host of ['0.0.0.0', '::', '::1', 'localhost', 'my-host.example']) {
      assert.equal(readConfig({ HOST: host }).host, host);
    }
  });
});
