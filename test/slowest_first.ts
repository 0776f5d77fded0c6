/**
 * Test files in order of how long they take, slowest first, so that both cores of a 2-core machine stay busy to the
 * end (vitest's default order, without a cache of earlier durations, is by file size and left the long regression
 * test to run alone at the end). Files not listed keep vitest's own order after these.
 */
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/** The longest files of the suite on a 2-core machine (≈ 200, 110, 80, 50 s), longest first. */
const SLOWEST = ['regression', 'playground_browser', 'webgpu_train', 'cli'];

const rank = (f: TestSpecification): number => {
  const i = SLOWEST.findIndex((name) => f.moduleId.endsWith(`/test/${name}.test.ts`));
  return i < 0 ? SLOWEST.length : i;
};

export default class SlowestFirst extends BaseSequencer {
  /** vitest's order, with the known-slow files moved to the front. */
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const base = await super.sort(files);
    return base.map((f, i) => ({ f, i })).sort((a, b) => rank(a.f) - rank(b.f) || a.i - b.i).map(({ f }) => f);
  }
}
