/**
 * Relative noise for copied weights (dead-expert revival by copy_hot): x + z·ρ·rms(x), z unit normals the
 * caller draws (from a seeded host stream, so the main thread and an expert-parallel worker add the same noise).
 */
import * as tf from '@tensorflow/tfjs';

/** x + z·ρ·rms(x), rms(x) = √mean(x²), elementwise on the device; z has x's size. */
export function addRelNoise(x: tf.Tensor, z: Float32Array, rho: number): tf.Tensor {
  if (z.length !== x.size) throw new Error(`addRelNoise: ${z.length} noise values for a tensor of ${x.size}`);
  return tf.tidy(() => {
    const std = tf.mul(rho, tf.sqrt(tf.mean(tf.square(x)))); // ρ · rms(x)
    return tf.add(x, tf.mul(tf.tensor(z, x.shape), std));
  });
}
