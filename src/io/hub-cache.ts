// The Hugging Face cache layout, shared with huggingface_hub so that both can reuse downloads:
//   {cacheDir}/models--owner--name/blobs/{etag}            file contents, named by ETag
//   {cacheDir}/models--owner--name/snapshots/{commit}/{f}  relative symlink to ../../blobs/{etag}
//   {cacheDir}/models--owner--name/refs/{revision}         the commit a branch or tag pointed to
//   {cacheDir}/models--owner--name/.no_exist/{commit}/{f}  empty marker: f is absent at commit
// Datasets use "datasets--owner--name".
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { dirname, join, relative } from "node:path";
import { temporaryPathFor, writeFileAtomic } from "./atomic.js";

export type RepoType = "model" | "dataset";

const COMMIT_HASH = /^[0-9a-f]{40}$/;

export function isCommitHash(revision: string): boolean {
  return COMMIT_HASH.test(revision);
}

/** Returns the cache folder of a repository, e.g. {cacheDir}/models--owner--name. */
export function repoCacheDir(cacheDir: string, repo: string, repoType: RepoType): string {
  return join(cacheDir, `${repoType}s--${repo.split("/").join("--")}`);
}

export function snapshotDir(repoDir: string, commit: string): string {
  return join(repoDir, "snapshots", commit);
}

/** Returns the commit that `revision` resolves to in the cache, or null when it is unknown. */
export function cachedCommit(repoDir: string, revision: string): string | null {
  if (isCommitHash(revision)) return revision;
  const refPath = join(repoDir, "refs", revision);
  if (!existsSync(refPath)) return null;
  const commit = readFileSync(refPath, "utf8").trim();
  return isCommitHash(commit) ? commit : null;
}

/** Records that `revision` (a branch or tag) points to `commit`. */
export function writeRef(repoDir: string, revision: string, commit: string): void {
  if (revision === commit) return;
  const refPath = join(repoDir, "refs", revision);
  mkdirSync(dirname(refPath), { recursive: true });
  writeFileAtomic(refPath, commit);
}

export function blobPath(repoDir: string, etag: string): string {
  return join(repoDir, "blobs", etag);
}

/**
 * Points snapshots/{commit}/{file} at a blob, replacing any older entry atomically. Uses a
 * relative symlink as huggingface_hub does, and a copy where symlinks are not permitted.
 */
export function linkSnapshotFile(repoDir: string, commit: string, file: string, etag: string) {
  const target = join(snapshotDir(repoDir, commit), file);
  mkdirSync(dirname(target), { recursive: true });
  const tmp = temporaryPathFor(target);
  try {
    symlinkSync(relative(dirname(target), blobPath(repoDir, etag)), tmp);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== "EPERM" && code !== "ENOTSUP" && code !== "EACCES") throw err;
    copyFileSync(blobPath(repoDir, etag), tmp);
  }
  try {
    renameSync(tmp, target);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  return target;
}

function noExistPath(repoDir: string, commit: string, file: string): string {
  return join(repoDir, ".no_exist", commit, file);
}

/** Records that `file` does not exist at `commit`, as huggingface_hub does for offline runs. */
export function markMissing(repoDir: string, commit: string, file: string): void {
  const path = noExistPath(repoDir, commit, file);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, "");
}

/** Returns the snapshot path of `file` if it is cached and its blob is present, else null. */
export function cachedFile(repoDir: string, commit: string, file: string): string | null {
  const path = join(snapshotDir(repoDir, commit), file);
  try {
    // statSync follows the symlink, so a link whose blob was deleted counts as absent.
    return statSync(path).isFile() ? path : null;
  } catch {
    return null;
  }
}

/** Lists the files of a cached snapshot as repository paths ("a/b.json"), sorted. */
export function listSnapshotFiles(repoDir: string, commit: string): string[] {
  const root = snapshotDir(repoDir, commit);
  const found: string[] = [];
  const walk = (dir: string, prefix: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      const name = prefix + entry.name;
      if (entry.isDirectory()) walk(path, `${name}/`);
      else if (cachedFile(repoDir, commit, name)) found.push(name);
    }
  };
  if (existsSync(root)) walk(root, "");
  return found.sort();
}
