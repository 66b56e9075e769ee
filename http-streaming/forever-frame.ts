/**
 * The forever frame ("the tricky iframe" of the documents): an HTML document
 * that never finishes loading, written one `<script>` at a time into a hidden
 * iframe. The browser's HTML parser runs each script as soon as its end tag
 * arrives, so every chunk is a function call into the parent page. It worked in
 * every browser of 2006, long before XHR streaming did (IE6 had no readyState 3
 * body), which is why Comet servers (Cometd, Lightstreamer, socket.io's
 * `htmlfile`, SockJS's `iframe-htmlfile`) kept it as a fallback.
 *
 *     <!doctype html><meta charset="utf-8"><title>forever frame</title>
 *     <script nonce="…">function p(m, h){…parent.onStreamMessage(window, m, h)…}</script>
 *     <!-- 1 KiB of padding -->
 *     <script nonce="…">p(null, {"heartbeatMs":15000})</script>        hello
 *     <script nonce="…">p({"id":1,"text":"\u003c/script\u003e…"})</script>  a message
 *     <script nonce="…">p(null)</script>                               a heartbeat
 *     </body></html>                                                   at shutdown
 *
 * The contract with the parent page (browser.ts implements its side):
 * - The parent defines `window.onStreamMessage(source, message, hello)`: `source`
 *   is the frame's window (so several frames can share one page), `message` a
 *   chat message object, or `null` for "open" and heartbeats. The first call,
 *   "open", also carries `hello`, `{"heartbeatMs": N}`: how often a heartbeat
 *   will come, which the parent's watchdog needs (an iframe shows its parent no
 *   response headers, and no error when its response breaks off: see browser.ts).
 * - The frame calls it only when the parent is reachable: a page of another
 *   origin cannot be scripted (the call throws, and `p` gives up quietly), and
 *   `frame-ancestors 'self'` stops another origin from framing it at all. The
 *   callback name is fixed, never taken from the URL (a `?callback=` would be
 *   JSONP's hole: any page could choose what code runs).
 *
 * The dangerous part is putting data inside a script element. The HTML tokenizer
 * ends a script at the first `</script`, and `<!--` inside a script switches it
 * to the "script data escaped" states where a later `<script` changes how the end
 * tag is found (WHATWG HTML §13.2.5.4 onwards). A message `</script><img
 * onerror=…>` would end our script and inject markup. escapeForScript writes `<`,
 * `>`, `&` as `\u003c`, `\u003e`, `\u0026` inside the JSON strings: still the same
 * JSON and the same JavaScript value, but no tag can form. U+2028 and U+2029 are
 * line terminators in JavaScript before ES2019 (inside a string literal they were
 * a syntax error), so they are escaped too. A nonce-based Content-Security-Policy
 * (server.ts) is the second wall: a script that did slip in would not run.
 *
 * Pure strings: tested in Node; the nonce comes from server.ts.
 */

/** The global function the frame calls on its parent. */
export const FRAME_CALLBACK = 'onStreamMessage';

/**
 * Bytes written before the first message. Old IE waited for 256 bytes and
 * Safari/Chrome for about 1 KiB before they rendered or ran anything of a
 * document still loading (they were sniffing the content type and looking for
 * a `<meta charset>`); SockJS and socket.io padded for that reason. A modern
 * Chromium with a charset in the Content-Type does not need it; it costs 1 KiB
 * once per connection.
 */
export const FRAME_PADDING_BYTES = 1024;

const UNSAFE_IN_SCRIPT: Record<string, string> = {
  '<': '\\u003c',
  '>': '\\u003e',
  '&': '\\u0026',
  '\u2028': '\\u2028',
  '\u2029': '\\u2029',
};

/**
 * JSON that is safe inside an HTML `<script>` element: the same value, with no
 * `<`, `>`, `&`, U+2028 or U+2029 left as such. Those characters can only occur
 * inside JSON strings (outside, JSON has only `{}[],:` digits and keywords),
 * where `\uXXXX` means the same character.
 */
export function escapeForScript(json: string): string {
  return json.replace(/[<>&\u2028\u2029]/g, (character) => UNSAFE_IN_SCRIPT[character]!);
}

/** A nonce goes into an attribute and a header: base64 characters only. */
function checkNonce(nonce: string): string {
  if (!/^[A-Za-z0-9+/_-]+=*$/.test(nonce)) throw new RangeError(`not a base64 nonce: ${JSON.stringify(nonce)}`);
  return nonce;
}

/** One call into the parent page, as a complete script element and a newline. */
function call(nonce: string, argument: string): string {
  return `<script nonce="${checkNonce(nonce)}">p(${argument})</script>\n`;
}

/** What the hello tells the parent, besides "open". */
export interface FrameHello {
  /** The server's heartbeat interval (HEARTBEAT_MS). */
  heartbeatMs: number;
}

/**
 * The start of the document, up to and including the first call
 * (`p(null, hello)`, "open"), padded to at least FRAME_PADDING_BYTES so that the
 * call runs at once.
 */
export function frameHead(nonce: string, heartbeatMs: number): string {
  const start =
    '<!doctype html>\n<html><head><meta charset="utf-8"><title>forever frame</title>\n' +
    `<script nonce="${checkNonce(nonce)}">\n` +
    // p: hand one message (or null) to the parent; a parent of another origin throws on access.
    `function p(m, h) {\n  var f;\n  try { f = parent !== window && parent.${FRAME_CALLBACK}; } catch (e) { return; }\n` +
    '  if (typeof f === "function") f(window, m, h);\n' +
    // The scripts are spent once run: remove them so a long-lived frame does not grow its DOM.
    '  var s = document.currentScript; if (s) s.remove();\n}\n</script>\n</head><body>\n';
  const hello: FrameHello = { heartbeatMs };
  const open = call(nonce, `null, ${escapeForScript(JSON.stringify(hello))}`);
  const padding = Math.max(0, FRAME_PADDING_BYTES - start.length - open.length - '<!--  -->\n'.length);
  return `${start}<!-- ${' '.repeat(padding)} -->\n${open}`;
}

/** One message. `message` is any JSON-serialisable value (a chat message). */
export function frameMessage(nonce: string, message: object): string {
  return call(nonce, escapeForScript(JSON.stringify(message)));
}

/** A heartbeat: nothing to deliver, but proof the frame is alive (the parent's watchdog). */
export function frameHeartbeat(nonce: string): string {
  return call(nonce, 'null');
}

/** The end of the document, written at shutdown; the frame's `load` event then fires. */
export const FRAME_TAIL = '</body></html>\n';
