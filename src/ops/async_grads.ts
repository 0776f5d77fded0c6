/**
 * tf.variableGrads for a forward pass that awaits. WebGPU in Node has no synchronous read-back, and the MoE
 * layer's host plan needs each layer's routing decisions before its dispatch: the forward pass has to await
 * a read between layers, which tf.variableGrads (a synchronous function on the tape) cannot hold.
 * tfjs's engine records every kernel on its tape while a gradient is open; this opens the tape, runs the
 * awaited forward in one engine scope, then hands the recorded tape to the engine's own backward pass
 * (engine.gradients), so the gradients are the ones tf.variableGrads computes. Nothing else may run tfjs
 * ops while the forward awaits (the training loop is sequential): they would land on this tape and scope.
 */
import * as tf from '@tensorflow/tfjs';

/** The parts of tfjs's Engine this uses (stable across tfjs 4.x, not in its typings). */
interface EngineInternals {
  state: { activeTape: { saved?: tf.Tensor[] }[] | null; gradientDepth: number };
  startTape(): void;
  endTape(): void;
  startScope(name?: string): void;
  endScope(result?: tf.TensorContainer): void;
  gradients(f: () => tf.Tensor, xs: tf.Tensor[], dy: tf.Tensor | null, allowNoGradients: boolean): { value: tf.Tensor; grads: (tf.Tensor | null)[] };
}

/** { value: f(), grads: ∂f/∂v by variable name } for an async scalar f over the trainable variables of varList. */
export async function variableGradsAsync(f: () => Promise<tf.Scalar>, varList: tf.Variable[]): Promise<{ value: tf.Scalar; grads: Record<string, tf.Tensor> }> {
  const engine = tf.engine() as unknown as EngineInternals;
  if (engine.state.gradientDepth !== 0) throw new Error('variableGradsAsync: cannot nest inside another gradient');
  const vars = varList.filter((v) => v.trainable);
  if (vars.length === 0) throw new Error(`variableGradsAsync: none of the ${varList.length} variables is trainable`);
  engine.startTape();
  engine.startScope('forward-async');
  let y: tf.Scalar;
  try {
    y = await f();
  } catch (e) {
    engine.endScope();
    const tape = engine.state.activeTape;
    engine.endTape();
    for (const node of tape ?? []) for (const t of node.saved ?? []) t.dispose();
    engine.state.activeTape = null;
    throw e;
  }
  if (!(y instanceof tf.Tensor) || y.rank !== 0) throw new Error(`variableGradsAsync: f must resolve to a scalar tensor, got ${y instanceof tf.Tensor ? `rank ${y.rank}` : typeof y}`);
  engine.endScope(y);
  const tape = engine.state.activeTape;
  engine.endTape();
  // engine.gradients starts a fresh tape at depth 0: its forward function puts the recorded one back.
  const { value, grads } = engine.gradients(() => { engine.state.activeTape = tape; return y; }, vars, null, true);
  if (!grads.some((g) => g !== null)) throw new Error('variableGradsAsync: no variable is connected to the value of f');
  const named: Record<string, tf.Tensor> = {};
  vars.forEach((v, i) => { if (grads[i] !== null) named[v.name] = grads[i]!; });
  return { value: value as tf.Scalar, grads: named };
}

/** tf.tidy for an async body: every tensor it makes is disposed except the result. */
export async function scoped<T extends tf.TensorContainer>(f: () => Promise<T>): Promise<T> {
  tf.engine().startScope();
  try {
    const out = await f();
    tf.engine().endScope(out);
    return out;
  } catch (e) {
    tf.engine().endScope();
    throw e;
  }
}
