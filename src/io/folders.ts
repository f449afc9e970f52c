// Folder creation that fails with a clear error instead of hanging. On Node 20.20,
// mkdirSync(path, { recursive: true }) loops forever when mkdir returns ENOENT for a path whose
// parent exists, which Linux does for any new path under /proc. So parents are created here one
// at a time with plain mkdir.
import { existsSync, lstatSync, mkdirSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";

/**
 * Creates the folder `path` and its missing parents, like `mkdir -p`. Throws an error that names
 * the folder that could not be created, and why, when a parent is a file or mkdir fails.
 */
export function makeFolder(path: string): void {
  const missing: string[] = [];
  let current = resolve(path);
  // existsSync is false for a dangling symlink too; mkdir then fails with EEXIST below.
  while (!existsSync(current)) {
    missing.push(current);
    const parent = dirname(current);
    if (parent === current) break;
    current = parent;
  }
  if (existsSync(current) && !isFolder(current)) {
    throw new Error(`cannot create folder ${resolve(path)}, because ${current} is a file`);
  }
  for (const folder of missing.reverse()) {
    try {
      mkdirSync(folder);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? String(err);
      if (code === "EEXIST" && isFolder(folder)) continue;
      const reason =
        code === "EEXIST" && lstatSync(folder).isSymbolicLink()
          ? "it is a symbolic link to a missing target"
          : code;
      throw new Error(
        `cannot create folder ${folder} (${reason}); choose a folder on a writable file system`,
      );
    }
  }
}

function isFolder(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
