// Locates the shared test fixtures: real checkpoints, data and reference outputs that are not
// committed. TSLORA_FIXTURES overrides the default ../shared/fixtures beside the repository.
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";

/** The repository root: npm runs tests from there. */
export const repoRoot = process.cwd();

export const fixturesDir = resolve(
  process.env.TSLORA_FIXTURES ?? join(repoRoot, "../shared/fixtures"),
);

/** Returns the absolute path of a fixture file, or throws an error that says how to provide it. */
export function fixture(relativePath: string): string {
  const path = join(fixturesDir, relativePath);
  if (!existsSync(path)) {
    throw new Error(
      `fixture not found: ${path}. Tests read real models and data from ${fixturesDir}; ` +
        `set TSLORA_FIXTURES to the folder that contains models/, data/ and reference/.`,
    );
  }
  return path;
}
