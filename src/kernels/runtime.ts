// Loads the kernel module into one shared WebAssembly.Memory and reports which SIMD flavour runs.
// Node 20 accepts relaxed SIMD only behind a V8 flag, which must be set before any module that
// uses it is compiled. The flag is process-wide, and compiled modules can be sent to workers.
import { readFileSync } from "node:fs";
import { setFlagsFromString } from "node:v8";

/** The kernel module's exports: numeric arguments in, nothing or a number out. */
export type KernelExports = Record<string, (...args: number[]) => number | void>;

export type SimdKind = "relaxed-simd" | "simd";

export interface KernelRuntime {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  exports: KernelExports;
  simd: SimdKind;
  /** First byte the host allocator may use. */
  heapBase: number;
}

/** 64 KiB wasm pages; the wasm32 address space ends at 65536 pages (4 GiB). */
export const PAGE_BYTES = 65536;
export const MAX_PAGES = 65536;
const INITIAL_PAGES = 17;

let runtime: KernelRuntime | null = null;

function wasmPath(file: string): URL {
  // Compiled layout: dist/src/kernels/runtime.js and dist/wasm/<file>.
  return new URL(`../../wasm/${file}`, import.meta.url);
}

function relaxedSimdAccepted(bytes: Uint8Array): boolean {
  if (process.env.TSLORA_SIMD === "simd") return false;
  try {
    setFlagsFromString("--experimental-wasm-relaxed-simd");
  } catch {
    return false;
  }
  return WebAssembly.validate(bytes);
}

/** Returns the process-wide kernel runtime, compiling and instantiating it on first use. */
export function getRuntime(): KernelRuntime {
  if (runtime) return runtime;

  const relaxed = readFileSync(wasmPath("kernels-relaxed.wasm"));
  const simd: SimdKind = relaxedSimdAccepted(relaxed) ? "relaxed-simd" : "simd";
  const bytes = simd === "relaxed-simd" ? relaxed : readFileSync(wasmPath("kernels-simd.wasm"));
  if (process.env.TSLORA_TIER === "turbofan") setFlagsFromString("--no-liftoff");
  const t0 = performance.now();
  const module = new WebAssembly.Module(bytes);
  if (process.env.TSLORA_TIER) console.error(`compile ${(performance.now() - t0).toFixed(1)} ms`);
  const memory = new WebAssembly.Memory({
    initial: INITIAL_PAGES,
    maximum: MAX_PAGES,
    shared: true,
  });
  const instance = new WebAssembly.Instance(module, { env: instanceImports(memory) });
  const exports = kernelFunctions(instance);
  const heapBase = Number(exports.heapBase());
  runtime = { module, memory, exports, simd, heapBase };
  return runtime;
}

/** Collects the function exports of a kernel module instance. */
export function kernelFunctions(instance: WebAssembly.Instance): KernelExports {
  const out: KernelExports = {};
  for (const [name, value] of Object.entries(instance.exports)) {
    if (typeof value === "function") out[name] = value as (...args: number[]) => number | void;
  }
  return out;
}

/** Builds the import object every instance of the kernel module needs (main thread and workers). */
export function instanceImports(memory: WebAssembly.Memory): Record<string, unknown> {
  return {
    memory,
    abort(_msg: number, _file: number, line: number, column: number): never {
      throw new Error(`wasm kernel aborted at line ${line}:${column}`);
    },
  };
}
