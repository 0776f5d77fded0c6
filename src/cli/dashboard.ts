/** `switchyard dashboard RUN_DIR… [--port N] [--host H]`: the live dashboard of one or more run folders. */
import type { Command } from 'commander';
import { DEFAULT_DASHBOARD_PORT, startDashboard } from '../report/dashboard.ts';

/** Parses --port: an integer in 0..65535 (0 = any free port). */
export function parsePort(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n > 65535) throw new Error(`--port must be an integer in 0..65535 (0 = any free port), got ${JSON.stringify(v)}`);
  return n;
}

/** A line for a host that is not loopback: the runs become readable from the network. */
export function hostWarning(host: string): string | null {
  return /^(127\.|localhost$|::1$|\[::1\]$)/.test(host) ? null : `dashboard: serving on ${host}: anyone who can reach this machine can read these runs`;
}

/** Adds `switchyard dashboard`. */
export function register(program: Command): void {
  program
    .command('dashboard')
    .description('live web page of one or more run folders (side by side), updating while they train')
    .argument('<run_dirs...>', 'run folders (the --out of switchyard train)')
    .option('--port <n>', `TCP port (0 = any free port; default ${DEFAULT_DASHBOARD_PORT})`)
    .option('--host <addr>', 'interface to bind (default 127.0.0.1: this machine only)')
    .action(async (dirs: string[], o: { port?: string; host?: string }) => {
      const port = o.port === undefined ? DEFAULT_DASHBOARD_PORT : parsePort(o.port);
      const warn = o.host ? hostWarning(o.host) : null;
      if (warn) console.error(warn);
      const d = await startDashboard({ runs: dirs, port, host: o.host });
      console.log(`dashboard: ${d.url}  (${dirs.length} run${dirs.length > 1 ? 's' : ''}; Ctrl-C to stop)`);
      await new Promise<void>((resolve) => process.once('SIGINT', resolve));
      await d.close();
    });
}
