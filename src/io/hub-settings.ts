// Hub client settings: explicit options first, else the environment variables that
// huggingface_hub reads (HF_HUB_CACHE, HF_HOME, XDG_CACHE_HOME, HF_ENDPOINT, HF_TOKEN,
// HF_HUB_OFFLINE). This is the only place the Hub client reads the environment.
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { stderrProgressBar } from "./download-progress.js";
import type { DownloadProgress, TransferOptions } from "./hub-http.js";

export interface HubOptions {
  /** Hub URL; default HF_ENDPOINT, else https://huggingface.co. */
  endpoint?: string;
  /** Access token; default HF_TOKEN. */
  token?: string | null;
  /** Hub cache folder; default HF_HUB_CACHE, else $HF_HOME/hub. */
  cacheDir?: string;
  /** Use only the cache; default true when HF_HUB_OFFLINE is 1, true, yes or on. */
  offline?: boolean;
  /** Download progress; default a stderr bar when stderr is a terminal. Null disables it. */
  onProgress?: ((progress: DownloadProgress) => void) | null;
  /** Milliseconds without data before a request fails; default 60000. */
  idleTimeoutMs?: number;
}

export interface HubSettings {
  endpoint: string;
  token: string | null;
  cacheDir: string;
  offline: boolean;
  onProgress: ((progress: DownloadProgress) => void) | null;
  transfer: TransferOptions;
}

const DEFAULT_ENDPOINT = "https://huggingface.co";

function isTruthy(value: string | undefined): boolean {
  return ["1", "true", "yes", "on"].includes((value ?? "").trim().toLowerCase());
}

/** Returns the default Hub cache folder from the environment, as huggingface_hub resolves it. */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HF_HUB_CACHE) return resolve(env.HF_HUB_CACHE);
  const cacheHome = env.XDG_CACHE_HOME || join(homedir(), ".cache");
  const hfHome = env.HF_HOME || join(cacheHome, "huggingface");
  return resolve(hfHome, "hub");
}

/** Merges explicit options with the environment; the only place this module reads env. */
export function resolveHubSettings(
  opts: HubOptions = {},
  env: NodeJS.ProcessEnv = process.env,
): HubSettings {
  const endpoint = (opts.endpoint ?? env.HF_ENDPOINT ?? DEFAULT_ENDPOINT).replace(/\/+$/, "");
  let origin: string;
  try {
    origin = new URL(endpoint).origin;
  } catch {
    throw new Error(
      `hub: invalid endpoint ${JSON.stringify(endpoint)}. Set HF_ENDPOINT to a URL such as ` +
        `${DEFAULT_ENDPOINT}`,
    );
  }
  const token = opts.token !== undefined ? opts.token : env.HF_TOKEN || null;
  const onProgress =
    opts.onProgress !== undefined
      ? opts.onProgress
      : process.stderr.isTTY
        ? stderrProgressBar()
        : null;
  return {
    endpoint,
    token,
    cacheDir: opts.cacheDir ? resolve(opts.cacheDir) : defaultCacheDir(env),
    offline: opts.offline ?? isTruthy(env.HF_HUB_OFFLINE),
    onProgress,
    transfer: { token, endpointOrigin: origin, idleTimeoutMs: opts.idleTimeoutMs ?? 60_000 },
  };
}

const REPO_PART = /^[A-Za-z0-9][\w.-]*$/;

/** Splits "owner/name[@revision]" and checks it is a valid Hub repository id. */
export function parseRepoId(id: string): { repo: string; revision: string } {
  const at = id.indexOf("@");
  const repo = at < 0 ? id : id.slice(0, at);
  const revision = at < 0 ? "main" : id.slice(at + 1);
  const parts = repo.split("/");
  const valid =
    parts.length <= 2 &&
    parts.every((p) => REPO_PART.test(p) && !p.includes("--") && !p.includes("..")) &&
    revision.length > 0 &&
    !revision.split("/").includes("..");
  if (!valid) {
    throw new Error(
      `hub: invalid model id ${JSON.stringify(id)}. Expected "owner/name" or ` +
        `"owner/name@revision" (letters, digits, "-", "_", "."), or a path to a local folder`,
    );
  }
  return { repo, revision };
}
