// HTTP for the Hub client: metadata requests, downloads streamed to a temporary file, manual
// redirects (so the Authorization header never leaves the endpoint's origin) and an idle
// timeout so that a stalled connection fails instead of hanging.
import { createHash } from "node:crypto";
import { closeSync, openSync, renameSync, rmSync } from "node:fs";
import { temporaryPathFor, writeAll } from "./atomic.js";

/** Failure category, so that callers can treat a missing file and a network error differently. */
export type HubErrorKind =
  "not-found" | "unauthorized" | "offline" | "network" | "incomplete" | "integrity" | "http";

export class HubError extends Error {
  constructor(
    readonly kind: HubErrorKind,
    message: string,
    readonly status: number | null = null,
  ) {
    super(message);
    this.name = "HubError";
  }
}

export interface TransferOptions {
  /** Sent as "Authorization: Bearer <token>" to the endpoint's origin only. */
  token: string | null;
  /** The Hub's origin; credentials are not sent to any other (CDN redirects). */
  endpointOrigin: string;
  /** Milliseconds without response data before a request fails. */
  idleTimeoutMs: number;
}

export interface DownloadProgress {
  file: string;
  receivedBytes: number;
  /** Null when the server sent no size. */
  totalBytes: number | null;
  /** Average over the download so far. */
  bytesPerSecond: number;
  done: boolean;
}

const MAX_REDIRECTS = 10;

function headersFor(url: URL, options: TransferOptions): Record<string, string> {
  // identity: a compressed body would not match Content-Length or the file's hash.
  const headers: Record<string, string> = {
    "accept-encoding": "identity",
    "user-agent": "tslora",
  };
  if (options.token && url.origin === options.endpointOrigin) {
    headers.authorization = `Bearer ${options.token}`;
  }
  return headers;
}

/** A timer that aborts a request after `ms` without progress; `touch` restarts it. */
class IdleTimer {
  readonly controller = new AbortController();
  private timer: NodeJS.Timeout | null = null;
  timedOut = false;

  constructor(private readonly ms: number) {
    this.touch();
  }

  touch(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timedOut = true;
      this.controller.abort();
    }, this.ms);
    // A pending timer must not keep a finished program alive.
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}

function describeFailure(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  const detail = cause?.code ?? cause?.message;
  return detail ? `${(err as Error).message} (${detail})` : String((err as Error).message ?? err);
}

/** Sends one request without following redirects, mapping transport failures to HubError. */
async function send(
  method: "GET" | "HEAD",
  url: URL,
  options: TransferOptions,
  timer: IdleTimer,
): Promise<Response> {
  try {
    return await fetch(url, {
      method,
      headers: headersFor(url, options),
      redirect: "manual",
      signal: timer.controller.signal,
    });
  } catch (err) {
    if (timer.timedOut) {
      throw new HubError(
        "network",
        `${method} ${url.href} timed out after ${options.idleTimeoutMs} ms without a response. ` +
          `Check the connection or HF_ENDPOINT, or set HF_HUB_OFFLINE=1 to use the cache`,
      );
    }
    throw new HubError(
      "network",
      `${method} ${url.href} failed: ${describeFailure(err)}. Check the connection or ` +
        `HF_ENDPOINT, or set HF_HUB_OFFLINE=1 to use the cache`,
    );
  }
}

/** Raises the HubError that matches a 4xx/5xx response. */
export function raiseForStatus(response: Response, context: string): void {
  if (response.ok) return;
  const code = response.headers.get("x-error-code");
  const status = response.status;
  if (status === 401 || status === 403) {
    const missingRepo = code === "RepositoryNotFound";
    throw new HubError(
      missingRepo ? "not-found" : "unauthorized",
      `${context}: HTTP ${status}${code ? ` ${code}` : ""}. The repository does not exist, or it ` +
        `is private or gated: check the name, and set HF_TOKEN to a token with access`,
      status,
    );
  }
  if (status === 404) {
    throw new HubError(
      "not-found",
      `${context}: not found (HTTP 404${code ? ` ${code}` : ""}). Check the repository, ` +
        `revision and file name`,
      status,
    );
  }
  throw new HubError(
    "http",
    `${context}: HTTP ${status} ${response.statusText}. Retry later`,
    status,
  );
}

/**
 * Sends a request and follows redirects while `follow(from, to)` allows. Returns the last
 * response and every response on the way, so that headers of the Hub's own reply survive a
 * redirect to a CDN. The caller stops `timer` once it has read the body.
 */
async function request(
  method: "GET" | "HEAD",
  url: string,
  options: TransferOptions,
  follow: (from: URL, to: URL) => boolean,
  timer: IdleTimer,
): Promise<{ response: Response; hops: Response[] }> {
  let current = new URL(url);
  const hops: Response[] = [];
  for (let i = 0; i <= MAX_REDIRECTS; i++) {
    const response = await send(method, current, options, timer);
    hops.push(response);
    const location = response.headers.get("location");
    if (response.status < 300 || response.status >= 400 || location === null) {
      return { response, hops };
    }
    const next = new URL(location, current);
    if (!follow(current, next)) return { response, hops };
    await response.body?.cancel();
    current = next;
  }
  throw new HubError("http", `${method} ${url}: more than ${MAX_REDIRECTS} redirects`);
}

const followAll = () => true;

/** Returns the body of a GET request parsed as JSON. */
export async function getJson(url: string, options: TransferOptions, context: string) {
  const timer = new IdleTimer(options.idleTimeoutMs);
  try {
    const { response } = await request("GET", url, options, followAll, timer);
    raiseForStatus(response, context);
    try {
      return (await response.json()) as unknown;
    } catch (err) {
      const reason = timer.timedOut ? "timed out" : describeFailure(err);
      throw new HubError("http", `${context}: the response is not valid JSON (${reason})`);
    }
  } finally {
    timer.stop();
  }
}

/** A file's identity from the Hub's response headers. */
export interface FileMetadata {
  commit: string | null;
  /** The blob name: X-Linked-Etag (sha256 of an LFS file) or ETag (git blob id). */
  etag: string | null;
  size: number | null;
  /** URL that serves the contents (the CDN location for LFS files). */
  downloadUrl: string;
}

function cleanEtag(value: string | null): string | null {
  if (value === null) return null;
  const etag = value.replace(/^W\//, "").replace(/^"|"$/g, "");
  // The etag becomes a file name, so anything but a plain token is ignored.
  return /^[\w.-]+$/.test(etag) ? etag : null;
}

/**
 * Reads a file's commit, ETag and size with HEAD. Redirects within the endpoint (renamed
 * repositories) are followed; a redirect elsewhere (a CDN) is where the contents live.
 */
export async function fetchFileMetadata(
  url: string,
  options: TransferOptions,
  context: string,
): Promise<FileMetadata> {
  const timer = new IdleTimer(options.idleTimeoutMs);
  const sameOrigin = (from: URL, to: URL) => from.origin === to.origin;
  let result: { response: Response; hops: Response[] };
  try {
    result = await request("HEAD", url, options, sameOrigin, timer);
  } finally {
    timer.stop();
  }
  const { response, hops } = result;
  if (response.status >= 400) raiseForStatus(response, context);
  let commit: string | null = null;
  let linkedEtag: string | null = null;
  let linkedSize: string | null = null;
  for (const hop of hops) {
    commit ??= hop.headers.get("x-repo-commit");
    linkedEtag ??= hop.headers.get("x-linked-etag");
    linkedSize ??= hop.headers.get("x-linked-size");
  }
  const location = response.headers.get("location");
  const isRedirect = response.status >= 300 && response.status < 400 && location !== null;
  const size = linkedSize ?? (isRedirect ? null : response.headers.get("content-length"));
  return {
    commit,
    etag: cleanEtag(linkedEtag ?? response.headers.get("etag")),
    size: size === null || !/^\d+$/.test(size) ? null : Number(size),
    downloadUrl: isRedirect ? new URL(location, url).href : url,
  };
}

/** Writes a response body to `fd`, hashing it; returns the byte count and the sha256. */
async function streamToFile(
  body: ReadableStream<Uint8Array>,
  fd: number,
  timer: IdleTimer,
  onChunk: (received: number) => void,
): Promise<{ received: number; digest: string }> {
  const hash = createHash("sha256");
  let received = 0;
  try {
    for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
      timer.touch();
      writeAll(fd, chunk);
      hash.update(chunk);
      received += chunk.byteLength;
      onChunk(received);
    }
  } catch (err) {
    // Attach the byte count so the caller can say how far the download got.
    throw Object.assign(err as Error, { receivedBytes: received });
  }
  return { received, digest: hash.digest("hex") };
}

/**
 * Downloads `url` into `destination` through a temporary file beside it, renamed only when the
 * body is complete: the size matches and, for a sha256 ETag, the hash too. On any failure the
 * temporary file is removed and `destination` is untouched.
 */
export async function downloadToFile(
  url: string,
  destination: string,
  expected: { size: number | null; sha256: string | null; file: string },
  options: TransferOptions,
  onProgress: ((progress: DownloadProgress) => void) | null,
): Promise<void> {
  const timer = new IdleTimer(options.idleTimeoutMs);
  const context = `download of ${expected.file}`;
  let response: Response;
  try {
    ({ response } = await request("GET", url, options, followAll, timer));
  } catch (err) {
    timer.stop();
    throw err;
  }
  if (!response.ok || response.body === null) {
    timer.stop();
    raiseForStatus(response, context);
    throw new HubError("http", `${context}: HTTP ${response.status} with no body`);
  }

  const lengthHeader = response.headers.get("content-length");
  const total = expected.size ?? (lengthHeader === null ? null : Number(lengthHeader));
  const started = Date.now();
  const report = (received: number, done: boolean) =>
    onProgress?.({
      file: expected.file,
      receivedBytes: received,
      totalBytes: total,
      bytesPerSecond: received / Math.max((Date.now() - started) / 1000, 1e-3),
      done,
    });
  const retry = "Nothing was cached; run the command again to retry";

  const tmp = `${temporaryPathFor(destination)}.incomplete`;
  const fd = openSync(tmp, "wx");
  try {
    let result: { received: number; digest: string };
    try {
      result = await streamToFile(response.body, fd, timer, (n) => report(n, false));
    } catch (err) {
      const got = (err as { receivedBytes?: number }).receivedBytes ?? 0;
      const reason = timer.timedOut
        ? `no data for ${options.idleTimeoutMs} ms`
        : describeFailure(err);
      const of = total === null ? "" : ` of ${total}`;
      throw new HubError(
        "incomplete",
        `${context} was cut off after ${got}${of} bytes (${reason}). ${retry}`,
      );
    } finally {
      timer.stop();
      closeSync(fd);
    }

    if (total !== null && result.received !== total) {
      throw new HubError(
        "incomplete",
        `${context} ended after ${result.received} of ${total} bytes. ${retry}`,
      );
    }
    if (expected.sha256 !== null && result.digest !== expected.sha256) {
      throw new HubError(
        "integrity",
        `${context}: sha256 ${result.digest} does not match the Hub's ETag ${expected.sha256}. ` +
          `Nothing was cached; retry, and report it to the repository owner if it persists`,
      );
    }
    renameSync(tmp, destination);
    report(result.received, true);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}
