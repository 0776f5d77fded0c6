/**
 * A data-parallel worker rank: its own tfjs backend and a full replica of the model (a Trainer without data
 * or optimizer use). Per step it takes rank 0's weights when they changed, trains its share of the batch with
 * the balance statistics all-reduced through rank 0, and sends back its gradients and read-back numbers.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { initBackend } from '../backend.ts';
import { Trainer } from '../train/step.ts';
import type { DpCommand, DpReply, DpWorkerInit } from './dp_protocol.ts';

const init = workerData as DpWorkerInit;
const port = parentPort!;
const post = (m: DpReply) => port.postMessage(m);

await initBackend(init.cfg.backend, { quiet: true });
const trainer = new Trainer(init.cfg, {
  data: { vocab: init.vocab, tokenizer: null, tokensPerBatch: 0, validation: () => [], next: () => { throw new Error('a data-parallel worker draws no data'); } },
});
const weights = new Float32Array(init.weights);
const grads = new Float32Array(init.grads);
let seq = 0;
const pending = new Map<number, (v: Float64Array) => void>();
trainer.peers = {
  size: init.size,
  allReduce: (v) => new Promise((resolve) => {
    const s = ++seq;
    pending.set(s, resolve);
    post({ op: 'reduce', seq: s, v });
  }),
};

/** Commands run one after another; 'reduced' answers arrive while a step waits for them. */
let chain = Promise.resolve();
port.on('message', (m: DpCommand) => {
  if (m.op === 'reduced') {
    const resolve = pending.get(m.seq);
    pending.delete(m.seq);
    if (!resolve) post({ op: 'error', message: `rank ${init.rank}: all-reduce answer ${m.seq} that nobody waits for` });
    else resolve(m.v);
    return;
  }
  chain = chain.then(async () => {
    if (m.op === 'weights') trainer.setWeights(weights);
    else post({ op: 'result', value: await trainer.rankStep(m.step, m.batches, m.poison, grads) });
  }).catch((e: unknown) => post({ op: 'error', message: (e as Error)?.stack ?? String(e) }));
});
post({ op: 'ready' });
