/**
 * The playground's text: the first PLAYGROUND_CHARS characters of the nlp-corpus package (whole sentences),
 * split into train and validation exactly as `switchyard train` splits `data.max_chars: PLAYGROUND_CHARS`, so an
 * exported run trains on the same bytes in the CLI. Read at build time and inlined into the page.
 */
import { loadCorpus, splitTrainVal } from '../data/corpus.ts';
import { PLAYGROUND_CHARS, PLAYGROUND_VAL_FRACTION } from './settings.ts';

/** The slice, split into train and validation text. */
export function playgroundCorpus(): { train: string; val: string; maxChars: number } {
  const text = loadCorpus({ source: 'nlp-corpus', maxChars: PLAYGROUND_CHARS });
  return { ...splitTrainVal(text, PLAYGROUND_VAL_FRACTION), maxChars: PLAYGROUND_CHARS };
}
