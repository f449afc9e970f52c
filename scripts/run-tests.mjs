// Runs every compiled test file under dist/test (or $TSLORA_OUT/test) with node's test runner. Extra arguments filter
// the files by substring, e.g. `npm run test:only -- safetensors`.
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";

function findTests(dir) {
  const found = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) found.push(...findTests(path));
    else if (name.endsWith(".test.js")) found.push(path);
  }
  return found;
}

const filters = process.argv.slice(2);
const outDir = process.env.TSLORA_OUT ?? "dist";
const files = findTests(join(outDir, "test"))
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)))
  .sort();
if (files.length === 0) {
  console.error(`run-tests: no test files in ${outDir}/test match ${JSON.stringify(filters)}`);
  process.exit(1);
}
console.log(
  `run-tests: ${files.length} files: ${files.map((f) => relative(join(outDir, "test"), f)).join(" ")}`,
);
const result = spawnSync(process.execPath, ["--test", "--test-reporter=spec", ...files], {
  stdio: "inherit",
});
process.exit(result.status ?? 1);
