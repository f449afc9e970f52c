// Compiles the TypeScript sources with tsc into dist, or into $TSLORA_OUT when it is set.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, symlinkSync } from "node:fs";
import { createRequire } from "node:module";
import { join, resolve } from "node:path";

const outDir = process.env.TSLORA_OUT ?? "dist";

// Compiled files outside the repository cannot find its node_modules; link them in.
const absoluteOut = resolve(outDir);
if (!absoluteOut.startsWith(resolve(".") + "/")) {
  mkdirSync(absoluteOut, { recursive: true });
  const link = join(absoluteOut, "node_modules");
  if (!existsSync(link)) symlinkSync(resolve("node_modules"), link, "dir");
}
const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
const result = spawnSync(
  process.execPath,
  [
    tsc,
    "-p",
    "tsconfig.json",
    "--outDir",
    outDir,
    "--tsBuildInfoFile",
    join(outDir, ".tsbuildinfo"),
  ],
  { stdio: "inherit" },
);
process.exit(result.status ?? 1);
