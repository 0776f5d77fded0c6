/** `switchyard playground [--port N] [--out FILE]`: builds the browser playground and serves it on 127.0.0.1. */
import type { Command } from 'commander';
import { buildPlayground, writePlayground } from '../playground/build.ts';
import { servePlayground } from '../playground/serve.ts';

interface PlaygroundFlags { port: string; out?: string }

/** Adds `switchyard playground`. */
export function register(program: Command): void {
  program
    .command('playground')
    .description('train and watch a small MoE in a browser tab: builds the page and serves it on 127.0.0.1')
    .option('--port <n>', 'port on 127.0.0.1 (0 = any free port)', '8017')
    .option('--out <file>', 'only write the self-contained page (opens from file://) and exit')
    .action(async (f: PlaygroundFlags) => {
      if (f.out) {
        const { out } = await writePlayground(f.out);
        console.log(`wrote ${out}`);
        return;
      }
      const port = Number(f.port);
      if (!/^\d+$/.test(f.port)) throw new Error(`--port must be an integer in 0..65535, got '${f.port}'`);
      const { html } = await buildPlayground();
      const server = await servePlayground(html, port);
      console.log(`switchyard playground: open ${server.url} (Ctrl-C stops the server)`);
      await new Promise<void>((resolve) => process.once('SIGINT', () => resolve()));
      await server.close();
    });
}
