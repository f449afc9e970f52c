// AdamW with torch.optim.AdamW semantics (decoupled weight decay applied before the update,
// bias-corrected moments, eps added after the square root), gradient norms and clipping, and
// optimizer state export and import for checkpoints.
import { adamwF32 } from "../kernels/bindings/adamw.js";
import { scaleF32 } from "../kernels/bindings/elementwise.js";
import { sumSquaresF32 } from "../kernels/bindings/reduce.js";
import { formatValue } from "./format-value.js";
import { reserveGrads } from "./tape.js";
import { Tensor, formatShape } from "./tensor.js";

export interface AdamWOptions {
  lr: number;
  /** Default [0.9, 0.999], as torch. */
  betas?: [number, number];
  /** Default 1e-8, as torch. */
  eps?: number;
  /** Default 0.01, torch.optim.AdamW's default (transformers' Trainer passes 0.0). */
  weightDecay?: number;
}

/** A tensor in the form writeSafetensors takes (little-endian F32 bytes). */
export interface OptimizerTensor {
  name: string;
  dtype: "F32";
  shape: number[];
  data: Uint8Array;
}

/** A stored tensor as readSafetensors returns it. */
export interface StoredTensor {
  dtype: string;
  shape: readonly number[];
  data: Uint8Array;
}

/** The metadata key that marks an AdamW state file, and its value. */
const FORMAT_KEY = "optimizer";
const FORMAT_VALUE = "AdamW";

function checkHyperparameters(lr: number, betas: [number, number], eps: number, wd: number): void {
  const problems: string[] = [];
  if (!(lr >= 0) || !Number.isFinite(lr))
    problems.push(`lr must be a finite number >= 0, got ${formatValue(lr)}`);
  for (const [i, b] of betas.entries()) {
    if (!(b >= 0 && b < 1)) problems.push(`betas[${i}] must be in [0, 1), got ${formatValue(b)}`);
  }
  if (!(eps >= 0) || !Number.isFinite(eps))
    problems.push(`eps must be a finite number >= 0, got ${formatValue(eps)}`);
  if (!(wd >= 0) || !Number.isFinite(wd)) {
    problems.push(`weightDecay must be a finite number >= 0, got ${formatValue(wd)}`);
  }
  if (problems.length > 0) throw new Error(`AdamW: ${problems.join("; ")}`);
}

function bytesOf(values: Float32Array): Uint8Array {
  return new Uint8Array(
    values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength),
  );
}

export class AdamW {
  readonly params: readonly Tensor[];
  lr: number;
  betas: [number, number];
  eps: number;
  weightDecay: number;
  private steps = 0;
  /** Updates applied to each parameter; a parameter without a gradient at a step is skipped. */
  private readonly paramSteps: number[];
  private readonly expAvg: (Tensor | null)[];
  private readonly expAvgSq: (Tensor | null)[];

  constructor(params: readonly Tensor[], opts: AdamWOptions) {
    const seen = new Set<Tensor>();
    params.forEach((p, i) => {
      if (p.dtype !== "f32") {
        throw new Error(
          `AdamW: params[${i}] ${p.describe()} must be f32; trainable tensors are kept in f32`,
        );
      }
      if (!p.persistent) {
        throw new Error(
          `AdamW: params[${i}] ${p.describe()} is an arena tensor that endStep() frees; ` +
            `create parameters with { persistent: true }`,
        );
      }
      if (seen.has(p)) {
        throw new Error(
          `AdamW: params[${i}] ${p.describe()} is listed twice; pass each tensor once`,
        );
      }
      seen.add(p);
    });
    this.params = [...params];
    this.lr = opts.lr;
    this.betas = opts.betas ?? [0.9, 0.999];
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0.01;
    checkHyperparameters(this.lr, this.betas, this.eps, this.weightDecay);
    this.paramSteps = params.map(() => 0);
    // The moments and the gradient buffers are allocated now, next to the parameters, rather
    // than in the first step among its activations (see reserveGrads).
    this.expAvg = params.map((p) => Tensor.zeros(p.shape, "f32", { persistent: true }));
    this.expAvgSq = params.map((p) => Tensor.zeros(p.shape, "f32", { persistent: true }));
    reserveGrads(params);
  }

  /** The number of step() calls so far. */
  get stepCount(): number {
    return this.steps;
  }

  /** Applies one update to every parameter that has a gradient, at learning rate `lr` if given. */
  step(lr?: number): void {
    if (lr !== undefined) {
      checkHyperparameters(lr, this.betas, this.eps, this.weightDecay);
      this.lr = lr;
    }
    const [beta1, beta2] = this.betas;
    this.params.forEach((p, i) => {
      const g = p.grad;
      if (g === null) return;
      const m = (this.expAvg[i] ??= Tensor.zeros(p.shape, "f32", { persistent: true }));
      const v = (this.expAvgSq[i] ??= Tensor.zeros(p.shape, "f32", { persistent: true }));
      const t = ++this.paramSteps[i];
      adamwF32(p.offset, g.offset, m.offset, v.offset, p.size, {
        decay: 1 - this.lr * this.weightDecay,
        beta1,
        beta2,
        eps: this.eps,
        stepSize: this.lr / (1 - beta1 ** t),
        bc2Sqrt: Math.sqrt(1 - beta2 ** t),
      });
    });
    this.steps++;
  }

  /**
   * Returns the state as F32 tensors named `<name>.exp_avg` and `<name>.exp_avg_sq`, where
   * names[i] belongs to params[i] and a parameter never updated has no tensors. The string
   * metadata stores the step counts and hyperparameters.
   */
  exportState(names: readonly string[]): {
    tensors: OptimizerTensor[];
    metadata: Record<string, string>;
  } {
    this.checkNames("exportState", names);
    const tensors: OptimizerTensor[] = [];
    this.params.forEach((p, i) => {
      const m = this.expAvg[i];
      const v = this.expAvgSq[i];
      if (m === null || v === null || this.paramSteps[i] === 0) return;
      const shape = [...p.shape];
      tensors.push({ name: `${names[i]}.exp_avg`, dtype: "F32", shape, data: bytesOf(m.f32()) });
      tensors.push({ name: `${names[i]}.exp_avg_sq`, dtype: "F32", shape, data: bytesOf(v.f32()) });
    });
    const metadata: Record<string, string> = {
      [FORMAT_KEY]: FORMAT_VALUE,
      step_count: String(this.steps),
      param_steps: JSON.stringify(this.paramSteps),
      lr: String(this.lr),
      betas: JSON.stringify(this.betas),
      eps: String(this.eps),
      weight_decay: String(this.weightDecay),
    };
    return { tensors, metadata };
  }

  /**
   * Restores state written by exportState, for the same parameters in the same order. Like
   * torch's load_state_dict it also restores the hyperparameters. Throws one error that lists
   * every missing or mismatched entry.
   */
  importState(
    tensors: ReadonlyMap<string, StoredTensor>,
    metadata: Record<string, string>,
    names: readonly string[],
  ): void {
    this.checkNames("importState", names);
    if (metadata[FORMAT_KEY] !== FORMAT_VALUE) {
      throw new Error(
        `AdamW.importState: metadata "${FORMAT_KEY}" is ${JSON.stringify(metadata[FORMAT_KEY])}, ` +
          `expected "${FORMAT_VALUE}"; the file was not written by AdamW.exportState`,
      );
    }
    const paramSteps = JSON.parse(metadata.param_steps ?? "null") as unknown;
    const problems: string[] = [];
    if (!Array.isArray(paramSteps) || paramSteps.length !== this.params.length) {
      throw new Error(
        `AdamW.importState: param_steps ${metadata.param_steps} does not list one step count ` +
          `for each of the ${this.params.length} parameters`,
      );
    }
    const moments: [Float32Array, Float32Array][] = [];
    this.params.forEach((p, i) => {
      const t = paramSteps[i] as unknown;
      if (typeof t !== "number" || !Number.isInteger(t) || t < 0) {
        problems.push(`param_steps[${i}] = ${JSON.stringify(t)} is not a whole number`);
        return;
      }
      if (t === 0) return;
      const pair = ["exp_avg", "exp_avg_sq"].map((kind) => {
        const key = `${names[i]}.${kind}`;
        const stored = tensors.get(key);
        if (stored === undefined) {
          problems.push(`missing ${key}`);
          return null;
        }
        if (stored.dtype !== "F32" || stored.data.byteLength !== p.size * 4) {
          problems.push(
            `${key} is ${stored.dtype} ${formatShape(stored.shape)}, expected F32 ${formatShape(p.shape)}`,
          );
          return null;
        }
        return new Float32Array(stored.data.slice().buffer);
      });
      if (pair[0] !== null && pair[1] !== null) moments[i] = [pair[0], pair[1]];
    });
    if (problems.length > 0) {
      throw new Error(
        `AdamW.importState: the state does not match the parameters: ${problems.join("; ")}`,
      );
    }
    this.params.forEach((p, i) => {
      this.paramSteps[i] = paramSteps[i] as number;
      const pair = moments[i];
      if (pair === undefined) {
        // A parameter the saved run never updated starts from zero moments.
        this.expAvg[i]?.f32().fill(0);
        this.expAvgSq[i]?.f32().fill(0);
        return;
      }
      (this.expAvg[i] ??= Tensor.zeros(p.shape, "f32", { persistent: true })).f32().set(pair[0]);
      (this.expAvgSq[i] ??= Tensor.zeros(p.shape, "f32", { persistent: true })).f32().set(pair[1]);
    });
    this.steps = Number(metadata.step_count ?? 0);
    this.lr = Number(metadata.lr ?? this.lr);
    this.betas = metadata.betas ? (JSON.parse(metadata.betas) as [number, number]) : this.betas;
    this.eps = Number(metadata.eps ?? this.eps);
    this.weightDecay = Number(metadata.weight_decay ?? this.weightDecay);
    checkHyperparameters(this.lr, this.betas, this.eps, this.weightDecay);
  }

  /** Frees the moment buffers. */
  dispose(): void {
    for (const t of [...this.expAvg, ...this.expAvgSq]) t?.dispose();
    this.expAvg.fill(null);
    this.expAvgSq.fill(null);
  }

  private checkNames(where: string, names: readonly string[]): void {
    if (names.length !== this.params.length) {
      throw new Error(
        `AdamW.${where}: got ${names.length} names for ${this.params.length} parameters; ` +
          `pass one name per parameter, in the constructor's order`,
      );
    }
  }
}

/** Returns the L2 norm over the gradients of `params` (parameters without one count as 0). */
export function gradNorm(params: readonly Tensor[]): number {
  let total = 0;
  for (const p of params) {
    if (p.grad !== null) total += sumSquaresF32(p.grad.offset, p.grad.size);
  }
  return Math.sqrt(total);
}

/**
 * Scales the gradients so their joint L2 norm is at most maxNorm, as torch's clip_grad_norm_
 * (factor maxNorm / (norm + 1e-6), applied only when below 1). Returns the norm before clipping.
 */
export function clipGradNorm(params: readonly Tensor[], maxNorm: number): number {
  if (!(maxNorm > 0))
    throw new Error(`clipGradNorm: maxNorm must be > 0, got ${formatValue(maxNorm)}`);
  const norm = gradNorm(params);
  const factor = maxNorm / (norm + 1e-6);
  if (factor < 1) {
    for (const p of params) {
      if (p.grad !== null) scaleF32(p.grad.offset, p.grad.offset, p.grad.size, factor);
    }
  }
  return norm;
}
