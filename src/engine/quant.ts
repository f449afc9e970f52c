// Quantized frozen weights: a weight matrix kept as int8 or NF4 codes in the shared memory, for
// linear() to multiply with directly. The formats and their error bounds are described in
// kernels/reference/quant.ts. A QuantizedTensor is never trained: gradients flow through it to
// the layer's input, and it never gets a gradient of its own.
import {
  dequantizeInt8,
  dequantizeNf4,
  paddedRowLength,
  quantizeInt8,
  quantizeNf4,
  type Int8Weight,
  type Nf4Weight,
  type QuantKind,
} from "../kernels/reference/quant.js";
import { formatShape, Tensor, type DType } from "./tensor.js";

export type { QuantKind } from "../kernels/reference/quant.js";

/** Quantization choices of the loader and the CLI: a format, or "none" to keep the stored dtype. */
export type QuantizeOption = QuantKind | "none";

export const QUANT_KINDS: readonly QuantKind[] = ["int8", "nf4"];

/** Float dtypes a quantized weight can come from and be decoded back to. */
export type SourceDType = Extract<DType, "f32" | "bf16" | "f16">;

export interface QuantizeOptions {
  /** Layout of `values`: "outIn" [out, in] (nn.Linear) or "inOut" [in, out] (GPT-2 Conv1D). */
  layout?: "outIn" | "inOut";
  /** The dtype the weight was stored in, restored by merges that decode the weight. */
  sourceDtype?: SourceDType;
  name?: string;
}

/**
 * A frozen weight W [N, K] (N = out features, K = in features) stored quantized. Whatever the
 * source layout, the codes are stored as [N, Kp] rows (Kp = K rounded up to 64); `layout`
 * remembers the source layout so that decoding can restore it.
 */
export class QuantizedTensor {
  readonly kind: QuantKind;
  /** [out, in]: the product is x W^T. */
  readonly shape: readonly [number, number];
  readonly layout: "outIn" | "inOut";
  readonly sourceDtype: SourceDType;
  /** Row length of the codes, in weights: K rounded up to 64. */
  readonly paddedK: number;
  /** int8: i8 [N, Kp]. NF4: u8 [N, Kp / 2]. Stored as i32 words. */
  readonly codes: Tensor;
  /** int8: f32 row scales [N]. NF4: i8 absmax codes, one per 64-weight block, as i32 words. */
  readonly scales: Tensor;
  /** NF4: f32 absmax step per group of 256 blocks. int8: null. */
  readonly absmaxSteps: Tensor | null;
  /** NF4: mean of the block absmax values. int8: 0. */
  readonly absmaxMean: number;
  name: string | undefined;
  private disposed = false;

  private constructor(
    kind: QuantKind,
    shape: [number, number],
    options: Required<Omit<QuantizeOptions, "name">> & { name?: string },
    parts: { codes: Tensor; scales: Tensor; absmaxSteps: Tensor | null; absmaxMean: number },
  ) {
    this.kind = kind;
    this.shape = shape;
    this.layout = options.layout;
    this.sourceDtype = options.sourceDtype;
    this.name = options.name;
    this.paddedK = paddedRowLength(shape[1]);
    this.codes = parts.codes;
    this.scales = parts.scales;
    this.absmaxSteps = parts.absmaxSteps;
    this.absmaxMean = parts.absmaxMean;
  }

  /**
   * Quantizes the f32 values of a weight with N = `outFeatures` rows of K = `inFeatures` inputs,
   * stored in `options.layout` (default "outIn"), into persistent memory.
   */
  static quantize(
    kind: QuantKind,
    values: ArrayLike<number>,
    outFeatures: number,
    inFeatures: number,
    options: QuantizeOptions = {},
  ): QuantizedTensor {
    const layout = options.layout ?? "outIn";
    const resolved = { layout, sourceDtype: options.sourceDtype ?? "f32", name: options.name };
    const shape: [number, number] = [outFeatures, inFeatures];
    if (kind === "int8") {
      const w = quantizeInt8(values, outFeatures, inFeatures, layout);
      return new QuantizedTensor(kind, shape, resolved, {
        codes: persistentBytes(new Uint8Array(w.codes.buffer)),
        scales: Tensor.from(w.scales, [outFeatures], "f32", { persistent: true }),
        absmaxSteps: null,
        absmaxMean: 0,
      });
    }
    if (kind === "nf4") {
      const w = quantizeNf4(values, outFeatures, inFeatures, layout);
      return new QuantizedTensor(kind, shape, resolved, {
        codes: persistentBytes(w.codes),
        scales: persistentBytes(new Uint8Array(w.absmaxCodes.buffer)),
        absmaxSteps: Tensor.from(w.absmaxSteps, [w.absmaxSteps.length], "f32", {
          persistent: true,
        }),
        absmaxMean: w.absmaxMean,
      });
    }
    throw new Error(
      `QuantizedTensor.quantize: unknown format ${JSON.stringify(kind)}; use "int8" or "nf4"`,
    );
  }

  /** Quantizes a float tensor of shape [out, in] ("outIn") or [in, out] ("inOut"). */
  static fromTensor(
    kind: QuantKind,
    weight: Tensor,
    layout: "outIn" | "inOut" = "outIn",
  ): QuantizedTensor {
    if (weight.ndim !== 2 || weight.dtype === "i32") {
      throw new Error(
        `QuantizedTensor.fromTensor: expected a 2-D f32, bf16 or f16 weight, got ${weight.describe()}`,
      );
    }
    const [rows, cols] = weight.shape;
    const [outFeatures, inFeatures] = layout === "outIn" ? [rows, cols] : [cols, rows];
    return QuantizedTensor.quantize(kind, weight.toFloat32Array(), outFeatures, inFeatures, {
      layout,
      sourceDtype: weight.dtype,
      name: weight.name,
    });
  }

  get outFeatures(): number {
    return this.shape[0];
  }

  get inFeatures(): number {
    return this.shape[1];
  }

  /** Bytes of memory the codes and scales take. */
  get byteLength(): number {
    return this.codes.byteLength + this.scales.byteLength + (this.absmaxSteps?.byteLength ?? 0);
  }

  /** Throws if the weight was disposed. */
  assertAlive(where = "QuantizedTensor"): void {
    if (this.disposed)
      throw new Error(`${where}: quantized weight ${this.describe()} was disposed`);
  }

  describe(): string {
    return `${this.name ?? ""}${formatShape(this.shape)} ${this.kind}`;
  }

  /** Decodes to f32 values in the source layout ([out, in] or [in, out]). */
  toFloat32Array(): Float32Array {
    this.assertAlive("QuantizedTensor.toFloat32Array");
    const [n, k] = this.shape;
    const rowMajor =
      this.kind === "int8"
        ? dequantizeInt8(this.int8Parts(), n, k)
        : dequantizeNf4(this.nf4Parts(), n, k);
    return this.layout === "outIn" ? rowMajor : transposeRows(rowMajor, n, k);
  }

  /** Decodes into a new persistent tensor of the source dtype and layout. */
  dequantize(): Tensor {
    const shape = this.layout === "outIn" ? [...this.shape] : [this.shape[1], this.shape[0]];
    return Tensor.from(this.toFloat32Array(), shape, this.sourceDtype, {
      persistent: true,
      name: this.name,
    });
  }

  /** Frees the codes and scales. */
  dispose(): void {
    if (this.disposed) return;
    this.codes.dispose();
    this.scales.dispose();
    this.absmaxSteps?.dispose();
    this.disposed = true;
  }

  private int8Parts(): Int8Weight {
    const [n] = this.shape;
    const bytes = this.codes.bytes();
    return {
      codes: new Int8Array(bytes.buffer, bytes.byteOffset, n * this.paddedK),
      scales: this.scales.f32(),
    };
  }

  private nf4Parts(): Nf4Weight {
    const [n] = this.shape;
    const codes = this.codes.bytes();
    const absmax = this.scales.bytes();
    const blocks = (n * this.paddedK) / 64;
    return {
      codes: codes.subarray(0, (n * this.paddedK) / 2),
      absmaxCodes: new Int8Array(absmax.buffer, absmax.byteOffset, blocks),
      absmaxSteps: (this.absmaxSteps as Tensor).f32(),
      absmaxMean: this.absmaxMean,
    };
  }
}

// Copies bytes into a persistent i32 tensor (rounded up to whole words, the tail zero).
function persistentBytes(bytes: Uint8Array): Tensor {
  const words = Math.max(1, Math.ceil(bytes.length / 4));
  const t = Tensor.zeros([words], "i32", { persistent: true });
  t.bytes().set(bytes);
  return t;
}

/** Parses a --quantize value ("int8", "nf4" or "none"), naming the option in the error. */
export function parseQuantizeOption(value: string, where = "--quantize"): QuantizeOption {
  if (value === "none" || value === "int8" || value === "nf4") return value;
  throw new Error(`${where}: invalid value ${JSON.stringify(value)}; use int8, nf4 or none`);
}

/**
 * Returns the values of a weight after quantizing and decoding them (what a quantized base
 * multiplies with), in the layout they came in, without using the shared memory.
 */
export function quantizeRoundTrip(
  kind: QuantKind,
  values: ArrayLike<number>,
  outFeatures: number,
  inFeatures: number,
  layout: "outIn" | "inOut" = "outIn",
): Float32Array {
  const rowMajor =
    kind === "int8"
      ? dequantizeInt8(
          quantizeInt8(values, outFeatures, inFeatures, layout),
          outFeatures,
          inFeatures,
        )
      : dequantizeNf4(
          quantizeNf4(values, outFeatures, inFeatures, layout),
          outFeatures,
          inFeatures,
        );
  return layout === "outIn" ? rowMajor : transposeRows(rowMajor, outFeatures, inFeatures);
}

// Returns the [cols, rows] transpose of a row-major [rows, cols] matrix.
function transposeRows(values: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(values.length);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[c * rows + r] = values[r * cols + c];
  }
  return out;
}

/** Returns the bytes a [outFeatures, inFeatures] weight takes quantized as `kind`. */
export function quantizedByteLength(
  kind: QuantKind,
  outFeatures: number,
  inFeatures: number,
): number {
  const padded = outFeatures * paddedRowLength(inFeatures);
  if (kind === "int8") return padded + 4 * outFeatures;
  const blocks = padded / 64;
  return padded / 2 + blocks + 4 * Math.ceil(blocks / 256);
}
