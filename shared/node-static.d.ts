// node-static 0.7.11 ships no types; this declares the part shared/static.ts uses.
declare module 'node-static' {
  import type { IncomingMessage, ServerResponse } from 'node:http';

  export interface ServeResult {
    status: number;
    headers: Record<string, string>;
    message: string;
  }

  export interface ServerOptions {
    cache?: number | false;
    serverInfo?: string;
    headers?: Record<string, string>;
    indexFile?: string;
    gzip?: boolean | RegExp;
  }

  export class Server {
    constructor(root: string, options?: ServerOptions);
    readonly root: string;
    serve(req: IncomingMessage, res: ServerResponse, callback: (error: ServeResult | null, result?: ServeResult) => void): void;
  }

  const nodeStatic: { Server: typeof Server; version: number[] };
  export default nodeStatic;
}
