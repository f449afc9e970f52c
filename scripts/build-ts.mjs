// Compiles the TypeScript sources with tsc into dist, or into $TSLORA_OUT when it is set.
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import { join } from "node:path";

const outDir = process.env.TSLORA_OUT ?? "dist";
const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
const result = spawnSync(
  process.execPath,
  [tsc, "-p", "tsconfig.json", "--outDir", outDir, "--tsBuildInfoFile", join(outDir, ".tsbuildinfo")],
  { stdio: "inherit" },
);
process.exit(result.status ?? 1);
