// A Hugging Face Hub stand-in for tests: node:http on 127.0.0.1 (random ports) serving
// repositories in the Hub's URL layout, with a second server as the CDN that large (LFS) files
// redirect to. Faults can be switched on per file: a body cut off halfway, a stalled body, a
// corrupt body. Every request is recorded with its headers.
import { createHash } from "node:crypto";
import { type IncomingMessage, type Server, type ServerResponse, createServer } from "node:http";
import type { AddressInfo } from "node:net";

export interface FakeRepo {
  id: string;
  type?: "model" | "dataset";
  /** Branch or tag name → commit (40 hex digits). */
  refs: Record<string, string>;
  files: Record<string, Uint8Array | string>;
}

export interface RecordedRequest {
  server: "hub" | "cdn";
  method: string;
  path: string;
  authorization: string | undefined;
}

export interface HubServer {
  endpoint: string;
  cdnOrigin: string;
  requests: RecordedRequest[];
  /** Repository paths whose body stops halfway with the connection closed. */
  cutOff: Set<string>;
  /** Repository paths whose body stops halfway with the connection left open. */
  stall: Set<string>;
  /** Repository paths served with one byte changed. */
  corrupt: Set<string>;
  /** When set, the Hub (not the CDN) responds 401 to requests without "Authorization: Bearer <token>". */
  requiredToken: string | null;
  /** Old repository id → new id, served as a relative 307 redirect. */
  renamed: Map<string, string>;
  close(): Promise<void>;
}

interface StoredFile {
  path: string;
  content: Buffer;
  gitSha1: string;
  sha256: string;
  lfs: boolean;
}

/** Returns the git blob id, which the Hub sends as the ETag of regular files. */
export function gitBlobSha1(content: Uint8Array): string {
  const hash = createHash("sha1");
  hash.update(`blob ${content.byteLength}\0`);
  hash.update(content);
  return hash.digest("hex");
}

export function sha256Hex(content: Uint8Array): string {
  return createHash("sha256").update(content).digest("hex");
}

function storeFiles(repo: FakeRepo): Map<string, StoredFile> {
  const files = new Map<string, StoredFile>();
  for (const [path, data] of Object.entries(repo.files)) {
    const content = Buffer.from(typeof data === "string" ? Buffer.from(data, "utf8") : data);
    files.set(path, {
      path,
      content,
      gitSha1: gitBlobSha1(content),
      sha256: sha256Hex(content),
      // The Hub stores weights through Git LFS and serves them from a CDN.
      lfs: path.endsWith(".safetensors") || path.endsWith(".bin"),
    });
  }
  return files;
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return `http://127.0.0.1:${port}`;
}

export async function startHubServer(repos: FakeRepo[]): Promise<HubServer> {
  const stored = new Map(
    repos.map((r) => [`${r.type ?? "model"}:${r.id}`, { repo: r, files: storeFiles(r) }]),
  );
  const bySha256 = new Map<string, StoredFile>();
  for (const { files } of stored.values()) {
    for (const file of files.values()) if (file.lfs) bySha256.set(file.sha256, file);
  }

  const hub = createServer((req, res) => handleHub(req, res));
  const cdn = createServer((req, res) => handleCdn(req, res));
  const state: HubServer = {
    endpoint: await listen(hub),
    cdnOrigin: await listen(cdn),
    requests: [],
    cutOff: new Set(),
    stall: new Set(),
    corrupt: new Set(),
    requiredToken: null,
    renamed: new Map(),
    close: async () => {
      for (const server of [hub, cdn]) {
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
    },
  };

  function record(server: "hub" | "cdn", req: IncomingMessage): void {
    state.requests.push({
      server,
      method: req.method ?? "",
      path: req.url ?? "",
      authorization: req.headers.authorization,
    });
  }

  function sendError(res: ServerResponse, status: number, code: string, extra = {}): void {
    res.writeHead(status, { "x-error-code": code, "content-type": "text/plain", ...extra });
    res.end(code);
  }

  function sendBody(req: IncomingMessage, res: ServerResponse, file: StoredFile, headers = {}) {
    res.writeHead(200, { "content-length": file.content.byteLength, ...headers });
    if (req.method === "HEAD") return void res.end();
    let body = file.content;
    if (state.corrupt.has(file.path)) {
      body = Buffer.from(body);
      body[0] ^= 0xff;
    }
    if (state.cutOff.has(file.path) || state.stall.has(file.path)) {
      const half = body.subarray(0, Math.floor(body.byteLength / 2));
      res.write(half, () => {
        if (state.cutOff.has(file.path)) res.socket?.destroy();
      });
      return;
    }
    res.end(body);
  }

  function resolveCommit(repo: FakeRepo, revision: string): string | null {
    if (repo.refs[revision]) return repo.refs[revision];
    return Object.values(repo.refs).includes(revision) ? revision : null;
  }

  function authorized(req: IncomingMessage, res: ServerResponse): boolean {
    if (state.requiredToken === null) return true;
    if (req.headers.authorization === `Bearer ${state.requiredToken}`) return true;
    sendError(res, 401, "RepositoryNotFound");
    return false;
  }

  function handleHub(req: IncomingMessage, res: ServerResponse): void {
    record("hub", req);
    const url = new URL(req.url ?? "/", state.endpoint);
    const segments = url.pathname.split("/").slice(1).map(decodeURIComponent);

    // /api/{models|datasets}/{owner}/{name}/revision/{revision}
    if (segments[0] === "api" && segments[4] === "revision" && segments.length === 6) {
      if (!authorized(req, res)) return;
      const type = segments[1] === "datasets" ? "dataset" : "model";
      const entry = stored.get(`${type}:${segments[2]}/${segments[3]}`);
      if (!entry) return sendError(res, 401, "RepositoryNotFound");
      const commit = resolveCommit(entry.repo, segments[5]);
      if (!commit) return sendError(res, 404, "RevisionNotFound");
      const body = JSON.stringify({
        id: entry.repo.id,
        sha: commit,
        siblings: [...entry.files.keys()].map((rfilename) => ({ rfilename })),
      });
      res.writeHead(200, { "content-type": "application/json" });
      return void res.end(body);
    }

    // [/datasets]/{owner}/{name}/resolve/{revision}/{path...}
    const isDataset = segments[0] === "datasets";
    const rest = isDataset ? segments.slice(1) : segments;
    if (rest[2] !== "resolve" || rest.length < 5) return sendError(res, 404, "NotFound");
    const repoId = `${rest[0]}/${rest[1]}`;
    const newId = state.renamed.get(repoId);
    if (newId) {
      const prefix = isDataset ? "/datasets" : "";
      const tail = url.pathname
        .split("/")
        .slice(isDataset ? 4 : 3)
        .join("/");
      res.writeHead(307, { location: `${prefix}/${newId}/${tail}` });
      return void res.end();
    }
    if (!authorized(req, res)) return;
    const entry = stored.get(`${isDataset ? "dataset" : "model"}:${repoId}`);
    if (!entry) return sendError(res, 401, "RepositoryNotFound");
    const commit = resolveCommit(entry.repo, rest[3]);
    if (!commit) return sendError(res, 404, "RevisionNotFound");
    const file = entry.files.get(rest.slice(4).join("/"));
    if (!file) return sendError(res, 404, "EntryNotFound", { "x-repo-commit": commit });
    if (file.lfs) {
      res.writeHead(302, {
        location: `${state.cdnOrigin}/lfs/${file.sha256}`,
        "x-repo-commit": commit,
        "x-linked-etag": `"${file.sha256}"`,
        "x-linked-size": String(file.content.byteLength),
        etag: `"${file.gitSha1}"`,
      });
      return void res.end();
    }
    sendBody(req, res, file, { etag: `"${file.gitSha1}"`, "x-repo-commit": commit });
  }

  function handleCdn(req: IncomingMessage, res: ServerResponse): void {
    record("cdn", req);
    const match = /^\/lfs\/([0-9a-f]{64})$/.exec(req.url ?? "");
    const file = match ? bySha256.get(match[1]) : undefined;
    if (!file) return sendError(res, 404, "NoSuchKey");
    // A CDN's own ETag differs from the Hub's; the client must keep the Hub's X-Linked-Etag.
    sendBody(req, res, file, { etag: '"cdn-etag"' });
  }

  return state;
}
