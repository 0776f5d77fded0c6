/**
 * The gradient tfjs lacks for TopK (TensorFlow's TopKV2 gradient): the values' gradient scatters back
 * to the positions they were taken from, dx[.., indices[.., j]] += dvalues[.., j]; indices get none.
 * Registered once on import, so routers may take top-k of tensors that depend on trainable weights.
 */
import * as tf from '@tensorflow/tfjs';

let registered = false;

/** Registers the TopK gradient with the tfjs engine (idempotent). */
export function registerTopKGradient(): void {
  if (registered || tf.getGradient('TopK') !== undefined) { registered = true; return; }
  registered = true;
  tf.registerGradient({
    kernelName: 'TopK',
    inputsToSave: ['x'],
    outputsToSave: [false, true],
    gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
      const [x, indices] = saved;
      const dValues = (Array.isArray(dy) ? dy[0] : dy);
      return {
        x: () => tf.tidy(() => {
          const n = x.shape[x.rank - 1];
          const k = indices.shape[indices.rank - 1];
          const rows = x.size / n;
          const base = tf.mul(tf.range(0, rows, 1, 'int32'), tf.scalar(n, 'int32')).reshape([rows, 1]);
          const flat = tf.add(base, tf.reshape(indices, [rows, k])).reshape([rows * k, 1]); // [rows·k, 1]
          return tf.scatterND(flat, tf.reshape(dValues, [rows * k]), [rows * n]).reshape(x.shape);
        }),
      };
    },
  });
}

registerTopKGradient();
