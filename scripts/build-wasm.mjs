// Compiles the AssemblyScript kernels in src/kernels/wasm into two modules: one with relaxed SIMD
// (fused multiply-add) and one with plain SIMD, so the runtime can pick what the engine accepts.
import { mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import asc from "assemblyscript/asc";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const entry = join(root, "src/kernels/wasm/index.ts");
// TSLORA_OUT lets several builds of one checkout live side by side (default: dist).
const outDir = join(resolve(root, process.env.TSLORA_OUT ?? "dist"), "wasm");
mkdirSync(outDir, { recursive: true });

const common = [
  entry,
  "--runtime",
  "stub",
  "--importMemory",
  "--sharedMemory",
  "--initialMemory",
  "17",
  "--maximumMemory",
  "65536",
  "--optimizeLevel",
  "3",
  "--shrinkLevel",
  "0",
  "--noAssert",
  "--converge",
];

const variants = [
  { file: "kernels-relaxed.wasm", features: "simd,threads,relaxed-simd" },
  { file: "kernels-simd.wasm", features: "simd,threads" },
];

for (const { file, features } of variants) {
  const { error, stderr } = await asc.main([
    ...common,
    "--enable",
    features,
    "--outFile",
    join(outDir, file),
  ]);
  if (error) {
    console.error(stderr.toString());
    console.error(`build-wasm: compiling ${file} failed: ${error.message}`);
    process.exit(1);
  }
}
console.log(`build-wasm: wrote ${variants.map((v) => v.file).join(", ")} to ${outDir}`);
