// Gradient checkpointing: trade compute for memory by keeping only a segment's inputs during the
// forward pass and recomputing the segment's activations during backward. Applied to each
// transformer block, activation memory drops from every intermediate of every block to one
// hidden state per block, for the cost of one extra forward pass.
import { backward, isGradEnabled, noGrad, record, withGrad } from "../engine/tape.js";
import { Tensor } from "../engine/tensor.js";

/**
 * Runs `fn(...inputs)` without recording its intermediates, and records one node whose
 * backward reruns `fn` with recording on and backpropagates through it.
 *
 * `params` lists the trainable tensors that `fn` reads besides `inputs` (a block's LoRA
 * weights). They must be given because they are invisible from outside `fn`: without them a
 * segment whose inputs need no gradient (the first block over a frozen embedding) would record
 * nothing and its weights would never learn. Their gradients are accumulated into `.grad` by the
 * inner backward, so the outer node passes zeros for them.
 *
 * `fn` must compute the same values when rerun. NOTE: random ops inside `fn` (dropout) break
 * that unless their generator is rewound; `onRecompute` runs just before the rerun for that.
 */
export function checkpoint(
  fn: (...inputs: Tensor[]) => Tensor,
  inputs: readonly Tensor[],
  params: readonly Tensor[] = [],
  onRecompute?: () => void,
): Tensor {
  const trainable = params.filter((p) => p.requiresGrad);
  const needsGraph = inputs.some((x) => x.needsGrad) || trainable.length > 0;
  if (!isGradEnabled() || !needsGraph) return fn(...inputs);

  const out = noGrad(() => fn(...inputs));
  return record(out, "checkpoint", [...inputs, ...trainable], (gradOut, needs) => {
    onRecompute?.();
    const captured: (Tensor | null)[] = inputs.map(() => null);
    const detached = inputs.map((x, i) => detachCapturing(x, needs[i], (g) => (captured[i] = g)));
    const recomputed = withGrad(() => fn(...detached));
    if (recomputed.needsGrad) backward(recomputed, gradOut);

    // An input that the output does not depend on gets a zero gradient.
    const inputGrads = inputs.map((x, i) => {
      if (!needs[i]) return null;
      return captured[i] ?? Tensor.zeros(x.shape);
    });
    return [...inputGrads, ...trainable.map((p) => Tensor.zeros(p.shape))];
  });
}

/**
 * Returns a view of `x` with no history. When the caller needs x's gradient, the view gets a
 * node without inputs whose backward hands the gradient to `capture`. The tape then treats it
 * like any intermediate, so no persistent `.grad` buffer is allocated for it.
 */
function detachCapturing(x: Tensor, needsGrad: boolean, capture: (g: Tensor) => void): Tensor {
  const view = x.view(x.shape);
  if (needsGrad) {
    view.node = {
      op: "checkpoint-input",
      inputs: [],
      backward: (g) => {
        capture(g);
        return [];
      },
    };
  }
  return view;
}
