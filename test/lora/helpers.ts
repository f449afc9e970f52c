// Shared setup for the LoRA tests: the tiny reference models and their inputs.
import { readFileSync } from "node:fs";
import { Tensor } from "../../src/engine/index.js";
import { loadModelFromDir } from "../../src/models/index.js";
import type { CausalLM } from "../../src/models/index.js";
import { fixture } from "../helpers/fixtures.js";

export type Arch = "gpt2" | "llama";
export type AdapterDir = "adapter" | "adapter-all-linear";

export interface ReferenceInputs {
  input_ids: number[][];
  attention_mask: number[][];
  labels: number[][];
}

export interface ReferenceAdapter {
  logits: number[][][];
  loss: number;
  grads: Record<string, number[][]>;
  merged: { logits: number[][][]; loss: number; saved_dir: string | null };
  adamw: {
    hyperparameters: { lr: number; betas: [number, number]; eps: number; weight_decay: number };
    params_after_step1: Record<string, number[][]>;
    losses: number[];
    small_grad_elements: [string, [number, number], number][];
  };
}

export function readJson<T>(rel: string): T {
  return JSON.parse(readFileSync(fixture(rel), "utf8")) as T;
}

/** Loads reference/<arch>/model in f32 (fresh every call, so tests do not share state). */
export function loadReferenceModel(arch: Arch): CausalLM {
  return loadModelFromDir(fixture(`reference/${arch}/model`), "f32");
}

export interface Batch {
  inputIds: Tensor;
  attentionMask: Tensor;
  labels: Tensor;
  /** mask[b][t] = 1 for real tokens: only those logits are compared. */
  mask: number[][];
}

function i32(rows: number[][]): Tensor {
  return Tensor.from(Int32Array.from(rows.flat()), [rows.length, rows[0].length], "i32", {
    persistent: true,
  });
}

export function referenceBatch(arch: Arch): Batch {
  const inputs = readJson<ReferenceInputs>(`reference/${arch}/inputs.json`);
  return {
    inputIds: i32(inputs.input_ids),
    attentionMask: i32(inputs.attention_mask),
    labels: i32(inputs.labels),
    mask: inputs.attention_mask,
  };
}

/** Returns the max |ours - ref| over real-token positions of [B, T, V] logits. */
export function maxLogitError(ours: Float32Array, ref: number[][][], mask: number[][]): number {
  let worst = 0;
  const vocab = ref[0][0].length;
  const tokens = ref[0].length;
  for (let b = 0; b < ref.length; b++) {
    for (let t = 0; t < tokens; t++) {
      if (mask[b][t] !== 1) continue;
      const row = ref[b][t];
      const at = (b * tokens + t) * vocab;
      for (let v = 0; v < vocab; v++) worst = Math.max(worst, Math.abs(ours[at + v] - row[v]));
    }
  }
  return worst;
}

/** Runs the model on the batch and returns its logits [B, T, V] as f32 values. */
export function logitsOf(model: CausalLM, batch: Batch): Float32Array {
  const hidden = model.forward(batch.inputIds, { attentionMask: batch.attentionMask });
  return model.logits(hidden).toFloat32Array();
}

export function lossOf(model: CausalLM, batch: Batch): Tensor {
  return model.loss(batch.inputIds, batch.labels, { attentionMask: batch.attentionMask });
}
