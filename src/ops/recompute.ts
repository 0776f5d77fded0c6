/**
 * Activation recompute (selective recomputation, seeds 001/003; Megatron's `recompute_granularity:
 * selective`): run f in the forward pass without keeping its intermediates, and run it again in the
 * backward pass to get them. tfjs records no ops inside a customGrad forward, so only the inputs are kept;
 * the gradient is f's own, so results equal the run without recompute.
 */
import * as tf from '@tensorflow/tfjs';

/** y = f(inputs) with f's activations dropped after the forward pass and recomputed for the backward pass. */
export function recompute<T extends tf.Tensor>(f: (...inputs: tf.Tensor[]) => T, inputs: tf.Tensor[]): T {
  const g = (...args: unknown[]) => {
    const save = args[args.length - 1] as (ts: tf.Tensor[]) => void;
    const xs = args.slice(0, -1) as tf.Tensor[];
    save(xs);
    return {
      value: f(...xs),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        // A gradient inside a gradient: tfjs's inner tf.grads runs as a top-level one and clears the
        // engine's tape when done, which the outer backward pass still reads; keep it and put it back.
        const state = (tf.engine() as unknown as { state: { activeTape: unknown } }).state;
        const outerTape = state.activeTape;
        try {
          return tf.grads((...a: tf.Tensor[]) => f(...a))(saved, dy);
        } finally {
          state.activeTape = outerTape;
        }
      },
    };
  };
  return tf.customGrad(g as unknown as Parameters<typeof tf.customGrad>[0])(...inputs) as T;
}
