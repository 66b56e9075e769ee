import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingHttpHeaders } from 'node:http';
import { acceptValue, answerHandshake, normaliseOrigin, type HandshakeOptions } from './handshake.ts';

const OPTIONS: HandshakeOptions = {
  endpoints: new Map([
    ['/chat', ['chat.v1.json']],
    ['/echo', []],
  ]),
  allowedOrigins: ['https://friend.example'],
};

/** The §1.3 sample handshake, with whatever the case changes. */
function handshake(
  changes: IncomingHttpHeaders = {},
  request: { method?: string; url?: string; httpVersion?: string } = {},
  options = OPTIONS,
) {
  const headers: IncomingHttpHeaders = {
    host: 'localhost:8080',
    upgrade: 'websocket',
    connection: 'Upgrade',
    'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
    'sec-websocket-version': '13',
    ...changes,
  };
  for (const [name, value] of Object.entries(headers)) if (value === undefined) delete headers[name];
  return answerHandshake({ method: request.method ?? 'GET', url: request.url ?? '/chat', httpVersion: request.httpVersion ?? '1.1', headers }, options);
}

function expectRefusal(answer: ReturnType<typeof handshake>, status: number) {
  assert.equal(answer.accepted, false, answer.response);
  assert.equal(answer.status, status);
  // Every refusal is a complete response with a short plain-text body.
  const [head, body] = answer.response.split('\r\n\r\n');
  assert.match(head, new RegExp(`^HTTP/1.1 ${status} `));
  assert.match(head, /\r\nContent-Type: text\/plain; charset=utf-8\r\n/);
  assert.match(head, new RegExp(`\r\nContent-Length: ${Buffer.byteLength(body)}(\r\n|$)`));
  assert.ok(body.length > 1 && body.length < 100, body);
  return head;
}

describe('the opening handshake (RFC 6455 §4.2)', () => {
  test('Sec-WebSocket-Accept is base64(SHA-1(key + GUID)): the §1.3 sample key gives s3pPLMBiTxaQ9kYGzzhZRbK+xOo=', () => {
    assert.equal(acceptValue('dGhlIHNhbXBsZSBub25jZQ=='), 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
  });

  test('a valid upgrade is answered 101 Switching Protocols with the accept value', () => {
    const answer = handshake({}, { url: '/echo?x=1' });
    assert.ok(answer.accepted);
    assert.equal(answer.url.pathname, '/echo');
    assert.equal(answer.url.searchParams.get('x'), '1');
    assert.equal(answer.protocol, undefined);
    assert.equal(
      answer.response,
      'HTTP/1.1 101 Switching Protocols\r\n' +
        'Upgrade: websocket\r\n' +
        'Connection: Upgrade\r\n' +
        'Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n',
    );
  });

  test('Upgrade and Connection are case-insensitive comma-separated lists', () => {
    assert.ok(handshake({ upgrade: 'WebSocket', connection: 'keep-alive, UPGRADE' }).accepted);
    assert.ok(handshake({ upgrade: 'h2c ,websocket' }).accepted);
  });

  test('a request that is not a GET is 400', () => {
    expectRefusal(handshake({}, { method: 'POST' }), 400);
  });

  test('a request over HTTP/1.0 is 400 (§4.2.1: "HTTP/1.1 or higher")', () => {
    expectRefusal(handshake({}, { httpVersion: '1.0' }), 400);
    assert.ok(handshake({}, { httpVersion: '2.0' }).accepted);
  });

  test('a missing Host is 400', () => {
    expectRefusal(handshake({ host: undefined }), 400);
  });

  test('an Upgrade header without websocket, or none, is 400', () => {
    expectRefusal(handshake({ upgrade: 'h2c' }), 400);
    expectRefusal(handshake({ upgrade: undefined }), 400);
  });

  test('a Connection header without upgrade, or none, is 400', () => {
    expectRefusal(handshake({ connection: 'keep-alive' }), 400);
    expectRefusal(handshake({ connection: 'upgraded' }), 400);
    expectRefusal(handshake({ connection: undefined }), 400);
  });

  test('a Sec-WebSocket-Key that is not 16 bytes of base64 is 400', () => {
    const fifteenBytes = Buffer.alloc(15).toString('base64');
    const seventeenBytes = Buffer.alloc(17).toString('base64');
    for (const key of [undefined, '', fifteenBytes, seventeenBytes, 'dGhlIHNhbXBsZSBub25jZQ', '!GhlIHNhbXBsZSBub25jZQ==']) {
      expectRefusal(handshake({ 'sec-websocket-key': key }), 400);
    }
    // Node's types say this header is a string; on the wire it can still come twice.
    const twice = ['dGhlIHNhbXBsZSBub25jZQ==', 'dGhlIHNhbXBsZSBub25jZQ=='] as unknown as string;
    expectRefusal(handshake({ 'sec-websocket-key': twice }), 400);
  });

  test('a version other than 13, or none, is 426 with Sec-WebSocket-Version: 13 (§4.4)', () => {
    for (const version of ['8', '14', undefined]) {
      const head = expectRefusal(handshake({ 'sec-websocket-version': version }), 426);
      assert.match(head, /\r\nSec-WebSocket-Version: 13(\r\n|$)/);
    }
  });

  test('an unknown path is 404, whatever the headers', () => {
    expectRefusal(handshake({}, { url: '/nope' }), 404);
    expectRefusal(handshake({}, { url: '/chat/' }), 404);
    expectRefusal(handshake({}, { url: '//elsewhere/chat' }), 404);
    expectRefusal(handshake({ upgrade: undefined }, { url: '/nope' }), 404);
  });
});

describe('the Origin check (§4.2.2, §10.2)', () => {
  test('no Origin is allowed: non-browser clients send none', () => {
    assert.ok(handshake({ origin: undefined }).accepted);
  });

  test('the server’s own origin is allowed, compared by scheme, host and port', () => {
    assert.ok(handshake({ origin: 'http://localhost:8080' }).accepted);
    assert.ok(handshake({ origin: 'HTTP://LocalHost:8080' }).accepted);
    assert.ok(handshake({ origin: 'http://localhost', host: 'localhost:80' }).accepted);
    assert.ok(handshake({ origin: 'https://localhost:8443' , host: 'localhost:8443' }, {}, { ...OPTIONS, secure: true }).accepted);
  });

  test('another origin is 403: another port, another host, another scheme, or "null"', () => {
    for (const origin of ['http://localhost:8081', 'http://evil.example:8080', 'https://localhost:8080', 'null', 'file://', 'garbage']) {
      expectRefusal(handshake({ origin }), 403);
    }
  });

  test('an origin listed in ALLOWED_ORIGINS is allowed', () => {
    assert.ok(handshake({ origin: 'https://friend.example' }).accepted);
    assert.ok(handshake({ origin: 'https://friend.example:443' }).accepted);
    expectRefusal(handshake({ origin: 'http://friend.example' }), 403);
  });

  test('origins are normalised by URL rules, and non-http origins are not origins', () => {
    assert.equal(normaliseOrigin('HTTPS://Example.COM:443'), 'https://example.com');
    assert.equal(normaliseOrigin('ws://example.com'), undefined);
    assert.equal(normaliseOrigin('not a url'), undefined);
  });
});

describe('subprotocols (§1.9, §4.2.2)', () => {
  test('a subprotocol the endpoint speaks is chosen and named in the answer', () => {
    const answer = handshake({ 'sec-websocket-protocol': 'other, chat.v1.json' });
    assert.ok(answer.accepted);
    assert.equal(answer.protocol, 'chat.v1.json');
    assert.match(answer.response, /\r\nSec-WebSocket-Protocol: chat.v1.json\r\n\r\n$/);
  });

  test('no subprotocol is named when the client offers none the endpoint speaks', () => {
    for (const offered of ['other', undefined]) {
      const answer = handshake({ 'sec-websocket-protocol': offered });
      assert.ok(answer.accepted);
      assert.equal(answer.protocol, undefined);
      assert.doesNotMatch(answer.response, /Sec-WebSocket-Protocol/);
    }
  });

  test('a malformed subprotocol list is 400', () => {
    expectRefusal(handshake({ 'sec-websocket-protocol': 'chat.v1.json, a b' }), 400);
  });
});
