/**
 * The `switchyard` command line: commander wiring only; every command calls the library.
 * Each command lives in its own file under src/cli/ and exports `register(program)`.
 */
import { Command } from 'commander';

// A write past the file-size limit must fail with EFBIG (an error the command reports), not kill the process: the
// lock library's exit hook (signal-exit) catches SIGXFSZ and re-raises it unless another listener is present.
process.on('SIGXFSZ', () => {});

const program = new Command();
program
  .name('switchyard')
  .description('Mixture-of-Experts training with balanced expert load, and expert-load planning at cluster scale')
  .version('0.1.0');

// Command modules: each adds one subcommand. Keep this list sorted.
const modules: Array<{ register: (p: Command) => void }> = [
  await import('./compare.ts'), await import('./dashboard.ts'), await import('./eval.ts'), await import('./export.ts'), await import('./import.ts'), await import('./plan.ts'), await import('./playground.ts'), await import('./report.ts'), await import('./simulate.ts'), await import('./train.ts'),
];
for (const m of modules) m.register(program);

try {
  await program.parseAsync(process.argv);
} catch (e) {
  // Expected failures (bad input) print one clear line; the stack is for bugs, shown with DEBUG=switchyard.
  const err = e as Error;
  console.error(`switchyard: ${err.message}`);
  if (process.env.DEBUG?.includes('switchyard')) console.error(err.stack);
  process.exitCode = 1;
}
// Dawn (the webgpu backend) keeps the event loop alive after the command is done.
const { dawnStarted } = await import('../backend.ts');
if (dawnStarted()) process.exit(process.exitCode ?? 0);
