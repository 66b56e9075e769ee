import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_DELAY_MS, parseDelay, routeRequest } from './routes.ts';

const NAMES = ['ajax-polling', 'sse', 'websocket'];

describe('routeRequest: which folder a request target belongs to', () => {
  test('a path under a prefix goes to that folder with the prefix taken off, query kept', () => {
    assert.deepEqual(routeRequest('/sse/events?since=3', NAMES), { kind: 'mounted', name: 'sse', url: '/events?since=3' });
    assert.deepEqual(routeRequest('/ajax-polling/messages', NAMES), { kind: 'mounted', name: 'ajax-polling', url: '/messages' });
    assert.deepEqual(routeRequest('/websocket/chat?since=0', NAMES), { kind: 'mounted', name: 'websocket', url: '/chat?since=0' });
  });

  test('the prefix itself with its slash is the folder\'s root', () => {
    assert.deepEqual(routeRequest('/sse/', NAMES), { kind: 'mounted', name: 'sse', url: '/' });
    assert.deepEqual(routeRequest('/sse/?a=b', NAMES), { kind: 'mounted', name: 'sse', url: '/?a=b' });
  });

  test('the name without its trailing slash is redirected to it, query kept', () => {
    assert.deepEqual(routeRequest('/sse', NAMES), { kind: 'redirect', location: '/sse/' });
    assert.deepEqual(routeRequest('/websocket?x=1', NAMES), { kind: 'redirect', location: '/websocket/?x=1' });
  });

  test('matching is on whole segments of the raw path', () => {
    for (const target of ['/ssex', '/ssex/events', '/%73se/', '/SSE/', '//sse/', '/x/sse/', '/sse%2fevents']) {
      assert.deepEqual(routeRequest(target, NAMES), { kind: 'own', url: target }, target);
    }
  });

  test('what follows the prefix is handed on unchanged, for the folder\'s own gate to judge', () => {
    assert.deepEqual(routeRequest('/sse/../server.ts', NAMES), { kind: 'mounted', name: 'sse', url: '/../server.ts' });
    assert.deepEqual(routeRequest('/sse//x', NAMES), { kind: 'mounted', name: 'sse', url: '//x' });
  });

  test('a ? in the query is not mistaken for the start of the path', () => {
    assert.deepEqual(routeRequest('/publish?next=/sse/', NAMES), { kind: 'own', url: '/publish?next=/sse/' });
    assert.deepEqual(routeRequest('/sse?a=/sse', NAMES), { kind: 'redirect', location: '/sse/?a=/sse' });
  });

  test('everything else is the launcher\'s own', () => {
    for (const target of ['/', '/publish', '/control/delay', '/browser.js', '*']) {
      assert.deepEqual(routeRequest(target, NAMES), { kind: 'own', url: target });
    }
  });
});

describe('parseDelay: the body of POST /control/delay', () => {
  test('a decimal integer of milliseconds, surrounding whitespace allowed', () => {
    assert.deepEqual(parseDelay('0'), { ok: true, ms: 0 });
    assert.deepEqual(parseDelay('500'), { ok: true, ms: 500 });
    assert.deepEqual(parseDelay(' 250\n'), { ok: true, ms: 250 });
    assert.deepEqual(parseDelay(String(MAX_DELAY_MS)), { ok: true, ms: MAX_DELAY_MS });
  });

  test('anything that is not one is refused with the reason', () => {
    for (const body of ['', ' ', '-1', '1.5', '1e3', '500ms', '0x10', '007', '+5', '5 5', 'Infinity', 'NaN', '٥']) {
      const parsed = parseDelay(body);
      assert.equal(parsed.ok, false, JSON.stringify(body));
      if (!parsed.ok) assert.match(parsed.reason, /whole number of milliseconds/);
    }
  });

  test('more than MAX_DELAY_MS is refused, however many digits', () => {
    for (const body of [String(MAX_DELAY_MS + 1), '9'.repeat(400)]) {
      const parsed = parseDelay(body);
      assert.equal(parsed.ok, false);
      if (!parsed.ok) assert.match(parsed.reason, new RegExp(`at most ${MAX_DELAY_MS} ms`));
    }
  });
});
