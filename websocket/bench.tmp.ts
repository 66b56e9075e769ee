import WebSocket, { WebSocketServer } from 'ws';
import { startTestServer } from '../shared/testing/server.ts';
import { createWebSocket } from './server.ts';

async function run(url: string, size: number, seconds: number, binary: boolean) {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  await new Promise((r) => ws.on('open', r));
  const payload = binary ? Buffer.alloc(size, 7) : 'x'.repeat(size);
  const inFlight = size >= 1 << 20 ? 4 : 64;
  let received = 0;
  const end = Date.now() + seconds * 1000;
  await new Promise<void>((resolve) => {
    ws.on('message', () => {
      received++;
      if (Date.now() < end) ws.send(payload);
      else if (received >= 0) { resolve(); }
    });
    for (let i = 0; i < inFlight; i++) ws.send(payload);
  });
  ws.terminate();
  return received / seconds;
}

const ours = await startTestServer(createWebSocket);
const wss = new WebSocketServer({ port: 0, perMessageDeflate: false, maxPayload: 32 << 20 });
wss.on('connection', (s) => s.on('message', (d, isBinary) => s.send(d, { binary: isBinary })));
await new Promise((r) => wss.on('listening', r));
const wsUrl = `ws://127.0.0.1:${(wss.address() as any).port}/`;
for (const binary of [true, false]) for (const size of [16, 1024, 65536, 1 << 20]) {
  const a = await run(`ws://127.0.0.1:${ours.port}/echo`, size, 1.5, binary);
  const b = await run(wsUrl, size, 1.5, binary);
  console.log(binary ? 'bin' : 'txt', size, 'ours', a.toFixed(0), 'ws', b.toFixed(0), 'ratio', (a / b).toFixed(2));
}
await ours.close(); wss.close();
