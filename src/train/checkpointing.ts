// Gradient checkpointing: trade compute for memory by keeping only a segment's inputs during the
// forward pass and recomputing the segment's activations during backward. Applied to each
// transformer block, activation memory drops from every intermediate of every block to one
// hidden state per block, for the cost of one extra forward pass.
import { backward, freeUnsaved, isGradEnabled, noGrad, record, withGrad } from "../engine/tape.js";
import { getArena, type ArenaMark } from "../engine/memory.js";
import {
  closeScratchScope,
  openScratchScope,
  pinScratch,
  releaseScratch,
  Tensor,
} from "../engine/tensor.js";
import { Rng } from "../engine/random.js";
import { trainableParameters } from "../lora/adapters.js";
import { CHUNK_LOGITS } from "../engine/ops/linear-xent.js";
import { CausalLMBase } from "../models/base.js";
import type { Module } from "../nn/module.js";
import { randomSourceOf } from "../nn/random-source.js";

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
 * `fn` must compute the same values when rerun, so random ops inside it (dropout) need their
 * generator rewound: `onRecompute` runs just before the rerun, and the function it returns, if
 * any, runs just after it.
 */
export function checkpoint(
  fn: (...inputs: Tensor[]) => Tensor,
  inputs: readonly Tensor[],
  params: readonly Tensor[] = [],
  onRecompute?: () => (() => void) | void,
): Tensor {
  const trainable = params.filter((p) => p.requiresGrad);
  const needsGraph = inputs.some((x) => x.needsGrad) || trainable.length > 0;
  if (!isGradEnabled() || !needsGraph) return fn(...inputs);

  const out = runDiscarding(() => noGrad(() => fn(...inputs)));
  return record(
    out,
    "checkpoint",
    [...inputs, ...trainable],
    (gradOut, needs) => {
      const backwardMark = getArena().mark();
      const afterRecompute = onRecompute?.();
      const captured: (Tensor | null)[] = inputs.map(() => null);
      const detached = inputs.map((x, i) =>
        detachCapturing(x, needs[i], (g) => {
          // The inner backward frees g once the capture node returns; keep it for the copy below.
          pinScratch(g);
          captured[i] = g;
        }),
      );
      let recomputed: Tensor;
      try {
        // The recomputed block keeps only what its own backward reads, as in the forward pass
        // without checkpointing.
        recomputed = withGrad(() => freeUnsaved(() => fn(...detached)));
      } finally {
        afterRecompute?.();
      }
      if (recomputed.needsGrad) backward(recomputed, gradOut);

      // Only the input gradients leave this backward. The recomputed activations are scratch
      // tensors of the tape, freed when this op's backward returns, so the arena release below
      // has nothing left to free. An input that the output does not depend on gets a zero
      // gradient.
      const kept = keepAfterRelease(
        backwardMark,
        captured.filter((g): g is Tensor => g !== null),
      );
      const inputGrads = inputs.map((x, i) => {
        if (!needs[i]) return null;
        return captured[i] === null ? Tensor.zeros(x.shape) : (kept.shift() ?? null);
      });
      return [...inputGrads, ...trainable.map((p) => Tensor.zeros(p.shape))];
    },
    inputs,
  );
}

/**
 * Runs `fn` with its allocations in a scratch scope, frees everything but its result, and
 * returns a copy of the result in a new block. The copy is made after the intermediates are
 * freed, so the heap's best fit places it in one of the lowest holes. Left where `fn` allocated
 * it, each block's kept output would sit between the holes of its intermediates and split the
 * free memory, and the loss's large logits chunk would then go to the top of the heap.
 */
function runDiscarding(fn: () => Tensor): Tensor {
  const scope = openScratchScope();
  let result: Tensor | null = null;
  let owned = false;
  try {
    result = fn();
  } finally {
    owned = result !== null && scope.tensors.includes(result.base);
    closeScratchScope(scope, new Set(result === null ? [] : [result.base]));
  }
  const copy = Tensor.empty(result.shape, result.dtype);
  copy.bytes().set(result.bytes());
  // A result that fn did not allocate (an input passed through) is not this function's to free.
  if (owned) releaseScratch(result.base);
  return copy;
}

/**
 * Frees every arena block allocated after `mark` except the contents of `tensors`, which are
 * copied out, and returns new arena tensors with those contents. The arena is a bump allocator
 * that frees nothing until endStep(), so without this a segment's discarded activations would
 * still occupy memory and checkpointing would save none. The caller must hold no other
 * reference to a block allocated after `mark`. A tensor in a scratch scope's heap memory is not
 * in the arena and is returned as it is (a block under runBlocks allocates only there).
 */
function keepAfterRelease(mark: ArenaMark, tensors: readonly Tensor[]): Tensor[] {
  const copies = tensors.map((t) =>
    t.base.isScratch ? t : { shape: t.shape, dtype: t.dtype, bytes: t.bytes().slice() },
  );
  getArena().release(mark);
  return copies.map((c) => {
    if (c instanceof Tensor) return c;
    const t = Tensor.empty(c.shape, c.dtype);
    t.bytes().set(c.bytes);
    return t;
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
      saved: [],
      backward: (g) => {
        capture(g);
        return [];
      },
    };
  }
  return view;
}

/** A transformer block: a module whose forward maps hidden states to hidden states. */
interface Block {
  forward(x: Tensor, ...rest: never[]): Tensor;
}

function isBlock(module: Module): module is Module & Block {
  return "forward" in module && typeof module.forward === "function";
}

// Block paths of the supported families: Llama "model.layers.N", GPT-2 "transformer.h.N",
// BLOOM "transformer.h.N".
const BLOCK_PATH = /(^|\.)(layers|h)\.\d+$/;

/**
 * Logits per loss chunk under checkpointing: half of linearCrossEntropy's default. With the
 * blocks' activations gone, the chunk is the largest buffer of a step: 64 MiB for SmolLM2's
 * vocabulary, against 71 MB for all 30 saved block inputs at 4 × 256 tokens. Halving it
 * lowers the peak by about 32 MB. The weight is packed for twice as many chunks, which took
 * 1,245 against 1,190 ms of loss time for those 1,024 rows, under 1% of a step.
 */
const CHECKPOINTED_CHUNK_LOGITS = CHUNK_LOGITS / 2;

/**
 * Makes every transformer block of `model` run under checkpoint(): its forward keeps only the
 * block input, and backward recomputes it. The block's trainable tensors (LoRA weights, trained
 * biases) are found by their file keys, which contain the block path. The model's dropout
 * generator (randomSourceOf, shared by LoRA and the base model) is rewound for the
 * recomputation so that it draws the same masks. A causal LM's loss also
 * computes half as many logits at a time. Returns the block count.
 */
export function enableGradientCheckpointing(model: Module): number {
  if (model instanceof CausalLMBase) model.lossChunkLogits = CHECKPOINTED_CHUNK_LOGITS;
  const named = trainableParameters(model);
  const blocks: [string, Module & Block][] = [];
  for (const [path, m] of model.namedModules()) {
    if (BLOCK_PATH.test(path) && isBlock(m)) blocks.push([path, m]);
  }
  for (const [path, block] of blocks) {
    const params = named.filter(([key]) => `.${key}`.includes(`.${path}.`)).map(([, t]) => t);
    const original = block.forward.bind(block);
    block.forward = (x: Tensor, ...rest: never[]): Tensor => {
      const dropout = randomSourceOf(model);
      const before = dropout?.rng?.state() ?? null;
      const rewind = () => {
        if (dropout.rng === null || before === null) return;
        const after = dropout.rng.state();
        dropout.rng = Rng.fromState(before);
        const rng = dropout.rng;
        return () => {
          if (dropout.rng === rng) dropout.rng = Rng.fromState(after);
        };
      };
      return checkpoint((input) => original(input, ...rest), [x], params, rewind);
    };
  }
  if (blocks.length === 0) {
    throw new Error(
      "enableGradientCheckpointing: no transformer blocks found (module paths ending in " +
        "layers.N or h.N); this architecture does not support gradient checkpointing yet",
    );
  }
  return blocks.length;
}
