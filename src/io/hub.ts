// A Hugging Face Hub client that downloads into the cache layout huggingface_hub uses (see
// hub-cache.ts), so both tools share downloads. Settings come from the options, else from the
// environment (see hub-settings.ts).
import { existsSync, mkdirSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { INDEX_FILE, SINGLE_FILE, readShardIndex } from "./checkpoint.js";
import {
  type RepoType,
  blobPath,
  cachedCommit,
  cachedFile,
  isCommitHash,
  linkSnapshotFile,
  listSnapshotFiles,
  markMissing,
  repoCacheDir,
  snapshotDir,
  writeRef,
} from "./hub-cache.js";
import { HubError, downloadToFile, fetchFileMetadata, getJson } from "./hub-http.js";
import {
  type HubOptions,
  type HubSettings,
  parseRepoId,
  resolveHubSettings,
} from "./hub-settings.js";

export { HubError, type DownloadProgress } from "./hub-http.js";
export type { RepoType } from "./hub-cache.js";
export {
  type HubOptions,
  defaultCacheDir,
  parseRepoId,
  resolveHubSettings,
} from "./hub-settings.js";

function resolveUrl(
  s: HubSettings,
  repoType: RepoType,
  repo: string,
  revision: string,
  file: string,
): string {
  const prefix = repoType === "dataset" ? "datasets/" : "";
  const path = file.split("/").map(encodeURIComponent).join("/");
  return `${s.endpoint}/${prefix}${repo}/resolve/${encodeURIComponent(revision)}/${path}`;
}

interface RevisionInfo {
  sha: string;
  files: string[];
}

async function fetchRevisionInfo(
  s: HubSettings,
  repoType: RepoType,
  repo: string,
  revision: string,
): Promise<RevisionInfo> {
  const url = `${s.endpoint}/api/${repoType}s/${repo}/revision/${encodeURIComponent(revision)}`;
  const context = `hub: ${repoType} ${repo}@${revision}`;
  const body = (await getJson(url, s.transfer, context)) as {
    sha?: unknown;
    siblings?: { rfilename?: unknown }[];
  } | null;
  const sha = body?.sha;
  if (typeof sha !== "string" || !isCommitHash(sha) || !Array.isArray(body?.siblings)) {
    throw new HubError(
      "http",
      `${context}: the API response has no commit "sha" or no "siblings" list. Check that ` +
        `HF_ENDPOINT (${s.endpoint}) is a Hugging Face Hub`,
    );
  }
  const files = body.siblings
    .map((entry) => entry.rfilename)
    .filter((name): name is string => typeof name === "string");
  return { sha, files };
}

function offlineError(repo: string, revision: string, repoDir: string, missing: string): HubError {
  return new HubError(
    "offline",
    `hub: offline mode (HF_HUB_OFFLINE) is on and ${repo}@${revision} is not in the cache ` +
      `at ${repoDir} (missing: ${missing}). Run once with network access, or unset ` +
      `HF_HUB_OFFLINE`,
  );
}

interface FetchRequest {
  repo: string;
  repoType: RepoType;
  /** The revision the user asked for (branch, tag or commit). */
  revision: string;
  file: string;
  /** The commit, when the caller already resolved it: the URL then pins that commit. */
  commit?: string;
}

function warnStaleCache(context: string, err: unknown): void {
  process.emitWarning(
    `${context}: ${(err as Error).message}. Using the cached copy, which may be out of date`,
    "HubWarning",
  );
}

/** Returns the cached path of one file, downloading it unless it is already cached. */
async function fetchFile(s: HubSettings, req: FetchRequest): Promise<string> {
  const repoDir = repoCacheDir(s.cacheDir, req.repo, req.repoType);
  const context = `hub: ${req.repo}@${req.revision}: ${req.file}`;
  const knownCommit = req.commit ?? cachedCommit(repoDir, req.revision);
  const cached = knownCommit === null ? null : cachedFile(repoDir, knownCommit, req.file);

  if (s.offline) {
    if (cached) return cached;
    throw offlineError(req.repo, req.revision, repoDir, req.file);
  }
  // A file at a fixed commit never changes, so a cached copy needs no request.
  if (cached && (req.commit !== undefined || isCommitHash(req.revision))) return cached;

  const url = resolveUrl(s, req.repoType, req.repo, req.commit ?? req.revision, req.file);
  let meta;
  try {
    meta = await fetchFileMetadata(url, s.transfer, context);
  } catch (err) {
    if (err instanceof HubError && err.kind === "network" && cached) {
      warnStaleCache(context, err);
      return cached;
    }
    throw err;
  }
  const commit = meta.commit ?? req.commit ?? null;
  if (commit === null || !isCommitHash(commit) || meta.etag === null) {
    throw new HubError(
      "http",
      `${context}: the response has no X-Repo-Commit or ETag header. Check that HF_ENDPOINT ` +
        `(${s.endpoint}) is a Hugging Face Hub and that no proxy strips these headers`,
    );
  }
  const blob = blobPath(repoDir, meta.etag);
  if (!existsSync(blob)) {
    mkdirSync(join(repoDir, "blobs"), { recursive: true });
    const sha256 = /^[0-9a-f]{64}$/.test(meta.etag) ? meta.etag : null;
    const expected = { size: meta.size, sha256, file: req.file };
    await downloadToFile(meta.downloadUrl, blob, expected, s.transfer, s.onProgress);
  }
  const path = linkSnapshotFile(repoDir, commit, req.file, meta.etag);
  writeRef(repoDir, req.revision, commit);
  return path;
}

/**
 * Downloads one file of a Hub repository into the cache (or finds it there) and returns its
 * local path.
 */
export async function downloadFile(
  opts: { repo: string; file: string; revision?: string; repoType?: RepoType } & HubOptions,
): Promise<string> {
  const s = resolveHubSettings(opts);
  const { repo, revision } = parseRepoId(`${opts.repo}@${opts.revision ?? "main"}`);
  const segments = opts.file.split("/");
  if (opts.file.length === 0 || segments.some((p) => p === "" || p === "." || p === "..")) {
    throw new Error(
      `hub: invalid file name ${JSON.stringify(opts.file)}. Give a path inside the ` +
        `repository, such as "config.json" or "data/train.jsonl"`,
    );
  }
  return fetchFile(s, { repo, repoType: opts.repoType ?? "model", revision, file: opts.file });
}

/** Lists the files of a repository at a revision (from the cache when offline). */
export async function listRepoFiles(
  repoId: string,
  opts: { repoType?: RepoType; revision?: string } & HubOptions = {},
): Promise<string[]> {
  const s = resolveHubSettings(opts);
  const repoType = opts.repoType ?? "model";
  const { repo, revision } = parseRepoId(`${repoId}@${opts.revision ?? "main"}`);
  if (s.offline) {
    const repoDir = repoCacheDir(s.cacheDir, repo, repoType);
    const commit = cachedCommit(repoDir, revision);
    if (commit === null || !existsSync(snapshotDir(repoDir, commit))) {
      throw offlineError(repo, revision, repoDir, "the snapshot");
    }
    return listSnapshotFiles(repoDir, commit);
  }
  return (await fetchRevisionInfo(s, repoType, repo, revision)).files;
}

/** Files a model needs besides its weights; all but config.json are optional. */
export const MODEL_FILES = [
  "config.json",
  "generation_config.json",
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "chat_template.jinja",
] as const;

function weightsError(repo: string, revision: string, files: string[]): Error {
  const pickles = files.filter((f) => /\.(bin|pt|pth|ckpt)$/.test(f));
  const reason =
    pickles.length > 0
      ? `it has only PyTorch pickle weights (${pickles.slice(0, 3).join(", ")}), which are ` +
        `not supported. Pick a repository or revision with safetensors weights, or convert them`
      : `its files are: ${files.slice(0, 20).join(", ") || "(none)"}`;
  return new Error(`hub: ${repo}@${revision} has no ${SINGLE_FILE} or ${INDEX_FILE}: ${reason}`);
}

/** Returns the files a cached snapshot lacks: config.json and any weight file. */
function missingFromSnapshot(dir: string): string[] {
  const missing: string[] = [];
  if (!existsSync(join(dir, "config.json"))) missing.push("config.json");
  if (existsSync(join(dir, SINGLE_FILE))) return missing;
  if (!existsSync(join(dir, INDEX_FILE))) return [...missing, SINGLE_FILE];
  const shards = new Set(readShardIndex(dir).values());
  return [...missing, ...[...shards].filter((f) => !existsSync(join(dir, f)))];
}

function cachedSnapshot(s: HubSettings, repo: string, revision: string): string {
  const repoDir = repoCacheDir(s.cacheDir, repo, "model");
  const commit = cachedCommit(repoDir, revision);
  if (commit === null) throw offlineError(repo, revision, repoDir, `refs/${revision}`);
  const dir = snapshotDir(repoDir, commit);
  const missing = missingFromSnapshot(dir);
  if (missing.length > 0) throw offlineError(repo, revision, repoDir, missing.join(", "));
  return dir;
}

/** Returns the revision's commit and files, or the cached snapshot when the Hub is unreachable. */
async function revisionOrCachedSnapshot(
  s: HubSettings,
  repo: string,
  revision: string,
): Promise<RevisionInfo | { cachedDir: string }> {
  try {
    return await fetchRevisionInfo(s, "model", repo, revision);
  } catch (err) {
    if (!(err instanceof HubError && err.kind === "network")) throw err;
    let cachedDir: string;
    try {
      cachedDir = cachedSnapshot(s, repo, revision);
    } catch {
      throw err;
    }
    warnStaleCache(`hub: ${repo}@${revision}`, err);
    return { cachedDir };
  }
}

/** Downloads the model files of a revision whose commit and file list `info` holds. */
async function downloadModel(
  s: HubSettings,
  repo: string,
  revision: string,
  info: RevisionInfo,
): Promise<string> {
  const available = new Set(info.files);
  if (!available.has("config.json")) {
    throw new Error(
      `hub: ${repo}@${revision} has no config.json, so it is not a transformers model`,
    );
  }
  if (!available.has(SINGLE_FILE) && !available.has(INDEX_FILE)) {
    throw weightsError(repo, revision, info.files);
  }

  const request = { repo, repoType: "model" as const, revision, commit: info.sha };
  const repoDir = repoCacheDir(s.cacheDir, repo, "model");
  for (const file of MODEL_FILES) {
    // huggingface_hub reads the .no_exist markers offline to know a file is absent.
    if (available.has(file)) await fetchFile(s, { ...request, file });
    else markMissing(repoDir, info.sha, file);
  }

  const dir = snapshotDir(repoDir, info.sha);
  if (available.has(SINGLE_FILE)) {
    await fetchFile(s, { ...request, file: SINGLE_FILE });
  } else {
    // The index is read from the snapshot, which also checks that shard names stay inside it.
    await fetchFile(s, { ...request, file: INDEX_FILE });
    for (const shard of new Set(readShardIndex(dir).values())) {
      await fetchFile(s, { ...request, file: shard });
    }
  }
  writeRef(repoDir, revision, info.sha);
  return dir;
}

/**
 * Returns true when `idOrPath` can only be meant as a local path: it starts with "/", "./",
 * "../" or "~", has more than one "/" before any "@revision", or names a folder inside an
 * existing local folder.
 */
function looksLikePath(idOrPath: string): boolean {
  if (/^(\.{1,2}[/\\]|[/\\]|~)/.test(idOrPath)) return true;
  const repoPart = idOrPath.split("@")[0];
  if (repoPart.split("/").length > 2) return true;
  return idOrPath.includes("/") && existsSync(dirname(resolve(idOrPath)));
}

/** Builds the error for a missing local folder, followed by why the Hub lookup failed, if tried. */
function folderNotFoundError(idOrPath: string, hubError: unknown): Error {
  const folder = resolve(idOrPath);
  let message = `hub: model folder ${folder} not found`;
  if (idOrPath.startsWith("~")) {
    message += ` (Node does not expand "~"; give the path without it or let the shell expand it)`;
  }
  if (hubError === null) {
    return new Error(`${message}. Give an existing model folder or a Hub id such as "owner/name"`);
  }
  const reason = hubError instanceof Error ? hubError.message : String(hubError);
  message += `. Looking up "${idOrPath}" as a Hub model id failed too: ${reason}`;
  return hubError instanceof HubError
    ? new HubError(hubError.kind, message, hubError.status)
    : new Error(message);
}

/**
 * Returns a local model folder: `idOrPath` itself when it is a folder, else the snapshot of
 * Hub model "owner/name[@revision]" in the cache, after downloading its config, tokenizer
 * files and safetensors weights (never pickle .bin files).
 */
export async function resolveModelDir(idOrPath: string, opts: HubOptions = {}): Promise<string> {
  if (existsSync(idOrPath)) {
    if (!statSync(idOrPath).isDirectory()) {
      throw new Error(`hub: ${idOrPath} is a file. Expected a model folder or a Hub model id`);
    }
    return resolve(idOrPath);
  }
  if (looksLikePath(idOrPath)) throw folderNotFoundError(idOrPath, null);

  // An error up to the revision lookup means that the id may be a mistyped local path, so it
  // also reports the missing folder. Download errors after the lookup concern the Hub only.
  const s = resolveHubSettings(opts);
  let repo: string;
  let revision: string;
  let info: RevisionInfo | { cachedDir: string };
  try {
    ({ repo, revision } = parseRepoId(idOrPath));
    if (s.offline) return cachedSnapshot(s, repo, revision);
    if (isCommitHash(revision)) {
      // A snapshot at a fixed commit never changes, so a complete one needs no request.
      const dir = snapshotDir(repoCacheDir(s.cacheDir, repo, "model"), revision);
      if (existsSync(dir) && missingFromSnapshot(dir).length === 0) return dir;
    }
    info = await revisionOrCachedSnapshot(s, repo, revision);
  } catch (err) {
    throw folderNotFoundError(idOrPath, err);
  }
  if ("cachedDir" in info) return info.cachedDir;
  return downloadModel(s, repo, revision, info);
}
