// Tensors: a shape, a dtype and a byte offset into the shared wasm memory. Data is always
// contiguous and row-major; reshape makes a view, every other layout change copies.
import { getRuntime } from "../kernels/runtime.js";
import { getArena, getHeap } from "./memory.js";
import type { Node } from "./tape.js";

/** Element types. bf16 and f16 are for frozen weights; i32 for token ids and labels. */
export type DType = "f32" | "bf16" | "f16" | "i32";

export const DTYPE_BYTES: Record<DType, number> = { f32: 4, bf16: 2, f16: 2, i32: 4 };

export type Shape = readonly number[];

let arenaGeneration = 0;

/** Frees every arena tensor. Call it once per training or generation step, after the update. */
export function endStep(): void {
  for (const t of stepScratch) t.releaseScratch();
  stepScratch.length = 0;
  getArena().reset();
  arenaGeneration++;
}

/**
 * Tensors allocated while a scratch scope is open come from the heap instead of the arena, so
 * they can be freed before the step ends. backward() opens one around each op's backward: the
 * gradients it returns live on, and every other tensor it allocated is freed when it returns.
 * Without this, a step's peak memory would hold every temporary of the whole backward pass.
 */
export interface ScratchScope {
  tensors: Tensor[];
}

const scratchScopes: ScratchScope[] = [];
// Pinned scratch tensors released with no scope open; endStep() frees them.
const stepScratch: Tensor[] = [];

/** Opens a scratch scope; close it with closeScratchScope in a finally block. */
export function openScratchScope(): ScratchScope {
  const scope: ScratchScope = { tensors: [] };
  scratchScopes.push(scope);
  return scope;
}

/**
 * Closes the innermost scope. Tensors whose base is in `keep` now belong to the caller; pinned
 * ones move to the enclosing scope; the rest are freed.
 */
export function closeScratchScope(scope: ScratchScope, keep: ReadonlySet<Tensor>): void {
  const top = scratchScopes.pop();
  if (top !== scope) throw new Error("closeScratchScope: scopes must close in reverse order");
  for (const t of scope.tensors) {
    if (!keep.has(t)) releaseScratch(t);
  }
}

/** Frees a scratch base tensor, or hands it to the enclosing scope if it is pinned. */
export function releaseScratch(t: Tensor): void {
  if (!t.isScratch) return;
  if (t.pinned) {
    t.pinned = false;
    const parent = scratchScopes[scratchScopes.length - 1];
    (parent?.tensors ?? stepScratch).push(t);
    return;
  }
  t.releaseScratch();
}

let poisonFreed = false;

/**
 * Makes every scratch tensor freed from now on fill its memory with NaN first (off by default),
 * so that a backward which reads freed memory gives NaN instead of stale values that look right.
 * For tests. Returns the previous setting.
 */
export function setPoisonFreedMemory(on: boolean): boolean {
  const previous = poisonFreed;
  poisonFreed = on;
  return previous;
}

/** Keeps the scratch memory behind `t` alive after the scope or the reference that owns it ends. */
export function pinScratch(t: Tensor): void {
  t.base.pinned = true;
}

export function shapeSize(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function formatShape(shape: Shape): string {
  return `[${shape.join(", ")}]`;
}

function checkShape(shape: Shape, where: string): void {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) {
      throw new Error(
        `${where}: invalid shape ${formatShape(shape)}: dimensions must be whole numbers >= 0`,
      );
    }
  }
}

export interface TensorOptions {
  /** Keep the tensor across steps (weights, adapters, optimizer state). Default: arena. */
  persistent?: boolean;
  requiresGrad?: boolean;
  name?: string;
}

export class Tensor {
  readonly shape: Shape;
  readonly dtype: DType;
  /** Byte offset of element 0 in the shared memory. */
  readonly offset: number;
  readonly size: number;
  readonly persistent: boolean;
  /** A leaf that collects a gradient in `grad` during backward. */
  requiresGrad: boolean;
  grad: Tensor | null = null;
  /** A zeroed buffer set aside by reserveGrads (tape.ts) for the first gradient. */
  reservedGrad: Tensor | null = null;
  /** The operation that produced this tensor, while gradients are being recorded. */
  node: Node | null = null;
  name: string | undefined;
  private readonly generation: number;
  private owner: Tensor | null;
  private scratch = false;
  /** Set by pinScratch: survive the release that would free this scratch tensor. */
  pinned = false;
  private disposed = false;

  private constructor(
    shape: Shape,
    dtype: DType,
    offset: number,
    persistent: boolean,
    owner: Tensor | null,
  ) {
    this.shape = shape;
    this.dtype = dtype;
    this.offset = offset;
    this.size = shapeSize(shape);
    this.persistent = persistent;
    this.requiresGrad = false;
    this.generation = arenaGeneration;
    this.owner = owner;
  }

  /** Allocates an uninitialised tensor. */
  static empty(shape: Shape, dtype: DType = "f32", options: TensorOptions = {}): Tensor {
    checkShape(shape, "Tensor.empty");
    const bytes = shapeSize(shape) * DTYPE_BYTES[dtype];
    const persistent = options.persistent ?? false;
    const scope = persistent ? undefined : scratchScopes[scratchScopes.length - 1];
    let offset: number;
    if (persistent || scope !== undefined) offset = getHeap().alloc(bytes);
    else offset = getArena().alloc(bytes);
    const t = new Tensor([...shape], dtype, offset, persistent, null);
    if (scope !== undefined) {
      t.scratch = true;
      scope.tensors.push(t);
    }
    t.requiresGrad = options.requiresGrad ?? false;
    t.name = options.name;
    return t;
  }

  /**
   * Returns a persistent tensor with a shape and dtype but no storage, in the state dispose()
   * leaves: a parameter that a loader replaces before anything reads it.
   */
  static placeholder(shape: Shape, dtype: DType = "f32"): Tensor {
    checkShape(shape, "Tensor.placeholder");
    const t = new Tensor([...shape], dtype, 0, true, null);
    t.disposed = true;
    return t;
  }

  static zeros(shape: Shape, dtype: DType = "f32", options: TensorOptions = {}): Tensor {
    const t = Tensor.empty(shape, dtype, options);
    t.bytes().fill(0);
    return t;
  }

  static full(shape: Shape, value: number, options: TensorOptions = {}): Tensor {
    const t = Tensor.empty(shape, "f32", options);
    t.f32().fill(value);
    return t;
  }

  /** Copies `data` into a new tensor. Float arrays give f32 (or bf16/f16 if asked), Int32Array i32. */
  static from(
    data: ArrayLike<number>,
    shape: Shape,
    dtype: DType = data instanceof Int32Array ? "i32" : "f32",
    options: TensorOptions = {},
  ): Tensor {
    if (shapeSize(shape) !== data.length) {
      throw new Error(
        `Tensor.from: shape ${formatShape(shape)} has ${shapeSize(shape)} elements but data has ${data.length}`,
      );
    }
    const t = Tensor.empty(shape, dtype, options);
    switch (dtype) {
      case "f32":
        t.f32().set(data);
        break;
      case "i32":
        t.i32().set(data);
        break;
      case "bf16":
        encodeBf16(data, t.u16());
        break;
      case "f16":
        encodeF16(data, t.u16());
        break;
    }
    return t;
  }

  get ndim(): number {
    return this.shape.length;
  }

  get byteLength(): number {
    return this.size * DTYPE_BYTES[this.dtype];
  }

  /** True when backward must compute a gradient for this tensor. */
  get needsGrad(): boolean {
    return this.requiresGrad || this.node !== null;
  }

  /** Throws if the tensor was freed (disposed, or an arena tensor from an earlier step). */
  assertAlive(where = "tensor"): void {
    if (this.disposed || (this.owner?.disposed ?? false)) {
      throw new Error(`${where}: tensor ${this.describe()} was disposed`);
    }
    if (!this.persistent && this.generation !== arenaGeneration) {
      throw new Error(
        `${where}: tensor ${this.describe()} belongs to an earlier step; its memory was freed by endStep()`,
      );
    }
  }

  describe(): string {
    return `${this.name ?? ""}${formatShape(this.shape)} ${this.dtype}`;
  }

  /** Returns a view of the same memory with another shape of the same size. */
  view(shape: Shape): Tensor {
    const resolved = resolveShape(shape, this.size, this.shape);
    const t = new Tensor(resolved, this.dtype, this.offset, this.persistent, this.owner ?? this);
    return t;
  }

  /** Returns a view of rows [start, end) along the first dimension. */
  rows(start: number, end: number): Tensor {
    const n = this.shape[0];
    if (!(0 <= start && start <= end && end <= n)) {
      throw new Error(
        `Tensor.rows: range [${start}, ${end}) is outside the first dimension of ${this.describe()}`,
      );
    }
    const rowBytes = (this.size / n) * DTYPE_BYTES[this.dtype];
    const shape = [end - start, ...this.shape.slice(1)];
    return new Tensor(
      shape,
      this.dtype,
      this.offset + start * rowBytes,
      this.persistent,
      this.owner ?? this,
    );
  }

  bytes(): Uint8Array {
    this.assertAlive();
    return new Uint8Array(getRuntime().memory.buffer, this.offset, this.byteLength);
  }

  f32(): Float32Array {
    this.expectDtype("f32");
    return new Float32Array(getRuntime().memory.buffer, this.offset, this.size);
  }

  i32(): Int32Array {
    this.expectDtype("i32");
    return new Int32Array(getRuntime().memory.buffer, this.offset, this.size);
  }

  u16(): Uint16Array {
    this.assertAlive();
    if (this.dtype !== "bf16" && this.dtype !== "f16") {
      throw new Error(`Tensor.u16: expected a bf16 or f16 tensor, got ${this.describe()}`);
    }
    return new Uint16Array(getRuntime().memory.buffer, this.offset, this.size);
  }

  /** Copies the values out as f32, decoding bf16 and f16. */
  toFloat32Array(): Float32Array {
    switch (this.dtype) {
      case "f32":
        return this.f32().slice();
      case "i32":
        return Float32Array.from(this.i32());
      case "bf16":
        return decodeBf16(this.u16());
      case "f16":
        return decodeF16(this.u16());
    }
  }

  /** Copies the values out as nested arrays, mostly for tests and debugging. */
  toArray(): number[] {
    return Array.from(this.toFloat32Array());
  }

  /** Returns the single value of a one-element tensor. */
  item(): number {
    if (this.size !== 1)
      throw new Error(`Tensor.item: expected one element, got ${this.describe()}`);
    return this.toFloat32Array()[0];
  }

  /** The tensor that owns the memory: itself, or the tensor this is a view of. */
  get base(): Tensor {
    return this.owner ?? this;
  }

  /** True for a base tensor allocated from the heap inside a scratch scope. */
  get isScratch(): boolean {
    return this.scratch && !this.disposed;
  }

  /** Frees the heap block of a scratch tensor; views of it become unusable. */
  releaseScratch(): void {
    if (!this.scratch || this.disposed) return;
    if (poisonFreed)
      new Uint8Array(getRuntime().memory.buffer, this.offset, this.byteLength).fill(0xff);
    getHeap().release(this.offset);
    this.disposed = true;
  }

  /** Frees a persistent tensor's memory. Views of it become unusable too. */
  dispose(): void {
    if (this.disposed) return;
    if (this.owner !== null)
      throw new Error(`Tensor.dispose: ${this.describe()} is a view; dispose its base`);
    if (this.persistent) getHeap().release(this.offset);
    this.disposed = true;
    this.grad?.dispose();
    this.grad = null;
    this.reservedGrad?.dispose();
    this.reservedGrad = null;
  }

  private expectDtype(dtype: DType): void {
    this.assertAlive();
    if (this.dtype !== dtype) throw new Error(`expected a ${dtype} tensor, got ${this.describe()}`);
  }
}

function resolveShape(shape: Shape, size: number, from: Shape): number[] {
  const out = [...shape];
  const unknown = out.indexOf(-1);
  if (unknown >= 0) {
    const known = out.reduce((p, d, i) => (i === unknown ? p : p * d), 1);
    out[unknown] = known === 0 ? 0 : size / known;
  }
  if (shapeSize(out) !== size || out.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new Error(
      `view: cannot view ${formatShape(from)} (${size} elements) as ${formatShape(shape)}`,
    );
  }
  return out;
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** Rounds each value to bf16 (round to nearest even), as torch does. */
export function encodeBf16(data: ArrayLike<number>, out: Uint16Array): void {
  for (let i = 0; i < data.length; i++) {
    f32Scratch[0] = data[i];
    const bits = u32Scratch[0];
    if ((bits & 0x7fffffff) > 0x7f800000) {
      out[i] = (bits >>> 16) | 0x40; // keep NaN a quiet NaN
      continue;
    }
    out[i] = (bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16;
  }
}

export function decodeBf16(data: Uint16Array): Float32Array {
  const bits = new Uint32Array(data.length);
  for (let i = 0; i < data.length; i++) bits[i] = data[i] << 16;
  return new Float32Array(bits.buffer);
}

export function encodeF16(data: ArrayLike<number>, out: Uint16Array): void {
  const view = new DataView(new ArrayBuffer(2));
  for (let i = 0; i < data.length; i++) {
    setFloat16(view, data[i]);
    out[i] = view.getUint16(0, true);
  }
}

export function decodeF16(data: Uint16Array): Float32Array {
  const out = new Float32Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = halfToFloat(data[i]);
  return out;
}

/** Converts IEEE 754 binary16 bits to a number. */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac === 0 ? sign * Infinity : NaN;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

function setFloat16(view: DataView, value: number): void {
  view.setUint16(0, floatToHalf(value), true);
}

/** Converts a number to IEEE 754 binary16 bits with round to nearest even. */
export function floatToHalf(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  e = half;
  return sign | e;
}
