// Folder creation that fails with a clear error instead of hanging. On Node 20.20,
// mkdirSync(path, { recursive: true }) loops forever when mkdir returns ENOENT for a path whose
// parent exists, which Linux does for any new path under /proc. So parents are created here one
// at a time with plain mkdir.
import { closeSync, existsSync, lstatSync, mkdirSync, openSync, rmSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";

/**
 * Creates the folder `path` and its missing parents, like `mkdir -p`. Returns the outermost
 * folder it created (removing it undoes the call), or null when `path` already existed. Throws an
 * error that names the folder that could not be created, and why, when a parent is a file or
 * mkdir fails.
 */
export function makeFolder(path: string): string | null {
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
  return missing.length > 0 ? missing[0] : null;
}

/**
 * Checks that files can be created in the folder `path` by creating and deleting an empty file,
 * the same operation that later writes need. Throws an error that names the folder.
 */
export function checkWritableFolder(path: string): void {
  const probe = join(path, `.tslora-write-check-${process.pid}`);
  try {
    closeSync(openSync(probe, "wx"));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new Error(`cannot write to folder ${path} (${code}); choose a writable folder`);
  }
  rmSync(probe, { force: true });
}

function isFolder(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
