/** `switchyard demo`: trains into a kept run folder and ends by printing the `switchyard report` command for it. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect, it } from 'vitest';
import { defaultRunDir, runDemo } from '../src/cli/train.ts';
import { writeReport } from '../src/report/report.ts';

it('ends with the report command for its run folder, which is kept and reports', async () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-demo-'));
  const out = path.join(root, 'my demo'); // a space: the printed command must still be one shell word
  const lines: string[] = [];
  const dir = await runDemo({ out, set: ['steps=2', 'data.max_chars=50000', 'eval_batches=1', 'batch_size=2', 'seq_len=16'] }, (l) => lines.push(...l.split('\n')));
  expect(dir).toBe(out);
  expect(lines[lines.length - 1]).toBe(`  switchyard report '${out}'`);
  expect(fs.existsSync(path.join(out, 'metrics.jsonl'))).toBe(true); // kept
  expect(fs.existsSync(await writeReport(out))).toBe(true); // and the printed command's folder reports
  fs.rmSync(root, { recursive: true, force: true });
}, 120_000);

it('by default trains into runs/demo-<time> (kept, like train), not a temporary folder', () => {
  expect(defaultRunDir('demo', new Date('2026-12-02T09:15:00.123Z'))).toBe(path.join('runs', 'demo-2026-12-02T09-15-00-123Z'));
});
