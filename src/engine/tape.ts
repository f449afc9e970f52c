// Reverse-mode autodiff. An op whose inputs need a gradient attaches a Node to its output, so the
// graph is the chain of nodes, and backward() walks it in reverse topological order. Frozen
// tensors (requiresGrad false and no node) get no gradient buffers. Gradients still flow through
// ops that read them: a frozen weight's matmul passes dX back.
import {
  closeScratchScope,
  openScratchScope,
  pinScratch,
  releaseScratch,
  Tensor,
} from "./tensor.js";

/**
 * Computes the gradients of one op's inputs from the gradient of its output. `needs[i]` is true
 * when input i needs a gradient. Entries for inputs that do not are ignored and may be null.
 * `reusable` is true when no other gradient shares gradOut's memory and backward would free it
 * after this call. The op may then write an input's gradient over it and return gradOut.
 */
export type BackwardFn = (
  gradOut: Tensor,
  needs: readonly boolean[],
  reusable: boolean,
) => (Tensor | null)[];

export interface Node {
  op: string;
  inputs: readonly Tensor[];
  backward: BackwardFn;
  /**
   * The tensors whose memory `backward` reads, or undefined when the op did not declare them. Inputs that
   * backward does not read may be freed before it runs (see freeUnsaved).
   */
  saved?: readonly Tensor[];
}

let gradEnabled = true;

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Runs `fn` without recording gradients (inference, evaluation, generation). */
export function noGrad<T>(fn: () => T): T {
  const previous = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = previous;
  }
}

/** Runs `fn` with gradient recording on, for example inside a checkpointed segment. */
export function withGrad<T>(fn: () => T): T {
  const previous = gradEnabled;
  gradEnabled = true;
  try {
    return fn();
  } finally {
    gradEnabled = previous;
  }
}

// Nodes recorded inside each open freeUnsaved call, innermost last.
const collectors: Node[][] = [];

/**
 * Attaches a node to `out` when recording is on and any input needs a gradient. `saved` lists
 * every tensor whose memory `backward` reads (nulls are skipped), inputs and internal buffers
 * alike. Leaving it out marks the op as unknown, and freeUnsaved then frees nothing around it.
 */
export function record(
  out: Tensor,
  op: string,
  inputs: readonly Tensor[],
  backward: BackwardFn,
  saved?: readonly (Tensor | null)[],
): Tensor {
  if (!gradEnabled || !inputs.some((t) => t.needsGrad)) return out;
  const node: Node = { op, inputs, backward };
  if (saved !== undefined) node.saved = saved.filter((t): t is Tensor => t !== null);
  out.node = node;
  collectors[collectors.length - 1]?.push(node);
  return out;
}

let freeingEnabled = true;

/**
 * Turns freeUnsaved on or off (on by default) and returns the previous setting. Off, every
 * intermediate lives until endStep(); tests compare the two.
 */
export function setFreeUnsaved(on: boolean): boolean {
  const previous = freeingEnabled;
  freeingEnabled = on;
  return previous;
}

/**
 * Runs `fn` and frees every tensor it allocated that neither its result nor a backward recorded
 * inside it reads. A transformer block keeps its saved activations this way and drops the rest
 * (a frozen layer's input, a copy made before a transpose) as soon as it returns, where the step
 * arena would hold them until endStep(). The kept tensors are handed to the enclosing scratch
 * scope, or to endStep() when none is open. Without recording, only the result is kept. When an
 * op inside did not declare what it saves, nothing is freed.
 */
export function freeUnsaved(fn: () => Tensor): Tensor {
  if (!freeingEnabled) return fn();
  const scope = openScratchScope();
  const nodes: Node[] = [];
  collectors.push(nodes);
  let out: Tensor | null = null;
  try {
    out = fn();
  } finally {
    collectors.pop();
    collectors[collectors.length - 1]?.push(...nodes);
    const keep = new Set<Tensor>();
    if (out !== null && nodes.every((n) => n.saved !== undefined)) {
      keep.add(out.base);
      for (const n of nodes) for (const t of n.saved ?? []) keep.add(t.base);
    } else {
      for (const t of scope.tensors) keep.add(t);
    }
    const owned = scope.tensors.filter((t) => keep.has(t));
    closeScratchScope(scope, keep);
    for (const t of owned) {
      pinScratch(t);
      releaseScratch(t);
    }
  }
  return out;
}

function topologicalOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const visited = new Set<Tensor>();
  // Iterative DFS: deep models would overflow the call stack with recursion.
  const stack: [Tensor, number][] = [[root, 0]];
  visited.add(root);
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    const [t, i] = top;
    const inputs = t.node?.inputs ?? [];
    if (i < inputs.length) {
      top[1]++;
      const child = inputs[i];
      if (child.node !== null && !visited.has(child)) {
        visited.add(child);
        stack.push([child, 0]);
      }
    } else {
      stack.pop();
      order.push(t);
    }
  }
  return order;
}

/** Adds `g` into `target` elementwise (both f32, same size). */
export type Accumulate = (target: Tensor, g: Tensor) => void;

let accumulate: Accumulate = (target, g) => {
  const a = target.f32();
  const b = g.f32();
  for (let i = 0; i < a.length; i++) a[i] += b[i];
};

/** Installs the kernel used to sum gradients (the ops layer sets a wasm one). */
export function setAccumulate(fn: Accumulate): void {
  accumulate = fn;
}

/**
 * Backpropagates from `root`. With no `gradient`, root must have one element and its gradient
 * is 1. Leaves with requiresGrad collect into `.grad` (persistent, added to, so micro-batches
 * accumulate until zeroGrad). The graph is released afterwards.
 */
export function backward(root: Tensor, gradient?: Tensor): void {
  if (!root.needsGrad) {
    throw new Error(
      `backward: ${root.describe()} does not depend on any tensor that requires a gradient`,
    );
  }
  if (gradient === undefined && root.size !== 1) {
    throw new Error(
      `backward: ${root.describe()} is not a scalar; pass the gradient of the output`,
    );
  }
  const grads = new Map<Tensor, Tensor>();
  const seed = gradient ?? Tensor.full(root.shape, 1);
  grads.set(root, seed);
  const order = topologicalOrder(root);
  const live = new LiveGradients();
  // The caller owns `gradient` (a checkpointed segment passes its own gradOut): one reference
  // that is never dropped keeps this backward from freeing it.
  live.hold(seed);

  for (let k = order.length - 1; k >= 0; k--) {
    const t = order[k];
    const g = grads.get(t);
    grads.delete(t);
    if (g === undefined) continue;
    if (t.requiresGrad) addToLeafGrad(t, g);
    const node = t.node;
    if (node === null) {
      live.drop(g);
      continue;
    }
    const needs = node.inputs.map((x) => x.needsGrad);
    const inputGrads = runBackward(node, g, needs, g !== seed && live.exclusive(g));
    node.inputs.forEach((x, i) => {
      if (!needs[i]) return;
      const gi = inputGrads[i];
      if (gi === null || gi === undefined) {
        throw new Error(
          `backward of ${node.op}: no gradient returned for input ${i} ${x.describe()}`,
        );
      }
      if (gi.size !== x.size) {
        throw new Error(
          `backward of ${node.op}: gradient ${gi.describe()} does not match input ${x.describe()}`,
        );
      }
      live.hold(gi);
      if (x.node === null) {
        if (x.requiresGrad) addToLeafGrad(x, gi);
        live.drop(gi);
        return;
      }
      const previous = grads.get(x);
      if (previous === undefined) grads.set(x, gi);
      else {
        accumulate(previous, gi);
        live.drop(gi);
      }
    });
    live.drop(g);
  }
  for (const t of order) t.node = null;
}

/**
 * Runs one op's backward in a scratch scope: the gradients it returns for inputs that need one
 * survive, and every other tensor it allocated is freed at once.
 */
function runBackward(
  node: Node,
  g: Tensor,
  needs: readonly boolean[],
  reusable: boolean,
): (Tensor | null)[] {
  const scope = openScratchScope();
  const keep = new Set<Tensor>();
  try {
    const inputGrads = node.backward(g, needs, reusable);
    inputGrads.forEach((gi, i) => {
      if (needs[i] && gi !== null && gi !== undefined) keep.add(gi.base);
    });
    return inputGrads;
  } finally {
    closeScratchScope(scope, keep);
  }
}

/** Counts the references backward holds to each scratch gradient and frees it at zero. */
class LiveGradients {
  private readonly counts = new Map<Tensor, number>();

  hold(t: Tensor): void {
    const base = t.base;
    if (base.isScratch) this.counts.set(base, (this.counts.get(base) ?? 0) + 1);
  }

  /** True when `t` is a whole scratch gradient with no other reference. */
  exclusive(t: Tensor): boolean {
    const base = t.base;
    return base.isScratch && t.size === base.size && this.counts.get(base) === 1;
  }

  drop(t: Tensor): void {
    const base = t.base;
    const n = this.counts.get(base);
    if (n === undefined) return;
    if (n > 1) {
      this.counts.set(base, n - 1);
      return;
    }
    this.counts.delete(base);
    releaseScratch(base);
  }
}

function addToLeafGrad(leaf: Tensor, g: Tensor): void {
  if (leaf.grad === null) {
    leaf.grad = leaf.reservedGrad ?? Tensor.zeros(leaf.shape, "f32", { persistent: true });
    leaf.reservedGrad = null;
  }
  accumulate(leaf.grad, g);
}

/**
 * Allocates the gradient buffers of `params` now, zero-filled, for the first backward that
 * reaches each tensor to take. `.grad` stays null until then, so an optimizer still skips a
 * tensor that never got a gradient. Reserved before the first step, the buffers sit next to
 * the parameters. Allocated during that step's backward, they would land among its
 * activations and split the free memory that every later step reuses.
 */
export function reserveGrads(params: Iterable<Tensor>): void {
  for (const p of params) {
    if (p.grad !== null || p.reservedGrad !== null) continue;
    p.reservedGrad = Tensor.zeros(p.shape, "f32", { persistent: true });
  }
}

/** Sets the gradients of `params` to zero. */
export function zeroGrad(params: Iterable<Tensor>): void {
  for (const p of params) p.grad?.f32().fill(0);
}
