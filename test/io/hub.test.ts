// The Hub client against a loopback stand-in of the Hub (test/helpers/hub-server.ts): cache
// layout, revisions, redirects, errors, cut-off downloads, offline mode and tokens.
import { after, before, beforeEach, test } from "node:test";
import assert from "node:assert/strict";
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
} from "node:fs";
import { createServer } from "node:http";
import { type AddressInfo, type Socket, createServer as createNetServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type HubOptions,
  HubError,
  downloadFile,
  listRepoFiles,
  parseRepoId,
  resolveHubSettings,
  resolveModelDir,
} from "../../src/io/hub.js";
import { formatProgress } from "../../src/io/download-progress.js";
import type { DownloadProgress } from "../../src/io/hub-http.js";
import { openCheckpoint } from "../../src/io/checkpoint.js";
import { loadTokenizer } from "../../src/io/tokenizer.js";
import { readSafetensors, writeSafetensors } from "../../src/io/safetensors.js";
import { fixture } from "../helpers/fixtures.js";
import { type HubServer, sha256Hex, startHubServer } from "../helpers/hub-server.js";

const MAIN = "1".repeat(40);
const V1 = "2".repeat(40);
const SHARDED = "3".repeat(40);
const DATA = "4".repeat(40);
const PARQUET = "5".repeat(40);

function tinyStoriesFiles(): Record<string, Buffer> {
  const names = [
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "model.safetensors",
    "README.md",
  ];
  const files: Record<string, Buffer> = {};
  for (const name of names) files[name] = readFileSync(fixture(`models/TinyStories-656K/${name}`));
  // Pickle weights beside the safetensors file must never be downloaded.
  files["pytorch_model.bin"] = Buffer.from("pickle bytes");
  return files;
}

/** Splits TinyStories into two shards with an index, as save_pretrained does for big models. */
function shardedFiles(): Record<string, Buffer> {
  const scratch = mkdtempSync(join(tmpdir(), "tslora-hub-shards-"));
  try {
    const tensors = readSafetensors(fixture("models/TinyStories-656K/model.safetensors")).tensors;
    const names = [...tensors.keys()];
    const files: Record<string, Buffer> = {
      "config.json": readFileSync(fixture("models/TinyStories-656K/config.json")),
    };
    const weightMap: Record<string, string> = {};
    [names.slice(0, 10), names.slice(10)].forEach((part, i) => {
      const shard = `model-0000${i + 1}-of-00002.safetensors`;
      writeSafetensors(
        join(scratch, shard),
        part.map((n) => tensors.get(n)!),
      );
      files[shard] = readFileSync(join(scratch, shard));
      for (const n of part) weightMap[n] = shard;
    });
    files["model.safetensors.index.json"] = Buffer.from(JSON.stringify({ weight_map: weightMap }));
    return files;
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

let server: HubServer;
let cacheDir: string;

before(async () => {
  server = await startHubServer([
    { id: "tiny/stories", refs: { main: MAIN, v1: V1 }, files: tinyStoriesFiles() },
    { id: "tiny/sharded", refs: { main: SHARDED }, files: shardedFiles() },
    {
      id: "tiny/pickle",
      refs: { main: V1 },
      files: { "config.json": "{}", "pytorch_model.bin": "x" },
    },
    {
      id: "tiny/squad",
      type: "dataset",
      refs: { main: DATA, "refs/convert/parquet": PARQUET },
      files: { "data/train.jsonl": '{"text": "a"}\n', "README.md": "# data" },
    },
  ]);
});

after(async () => {
  await server.close();
});

beforeEach(() => {
  cacheDir = mkdtempSync(join(tmpdir(), "tslora-hub-cache-"));
  server.requests.length = 0;
  server.cutOff.clear();
  server.stall.clear();
  server.corrupt.clear();
  server.requiredToken = null;
  server.renamed.clear();
});

function options(extra: HubOptions = {}): HubOptions {
  return {
    endpoint: server.endpoint,
    cacheDir,
    token: null,
    offline: false,
    onProgress: null,
    ...extra,
  };
}

/** Lists every file and link under `dir` as relative paths, for cache-layout assertions. */
function walk(dir: string, prefix = ""): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const rel = prefix + entry.name;
    if (entry.isDirectory()) out.push(...walk(join(dir, entry.name), `${rel}/`));
    else out.push(rel);
  }
  return out.sort();
}

async function closedLoopbackEndpoint(): Promise<string> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

const repoDir = () => join(cacheDir, "models--tiny--stories");

test("download builds the HF cache layout", async () => {
  const dir = await resolveModelDir("tiny/stories", options());
  assert.equal(dir, join(repoDir(), "snapshots", MAIN));
  assert.equal(readFileSync(join(repoDir(), "refs", "main"), "utf8"), MAIN);

  const snapshot = walk(dir);
  assert.deepEqual(snapshot, [
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "special_tokens_map.json",
    "tokenizer.json",
    "tokenizer_config.json",
  ]);
  const weights = join(dir, "model.safetensors");
  assert.ok(lstatSync(weights).isSymbolicLink());
  const original = readFileSync(fixture("models/TinyStories-656K/model.safetensors"));
  assert.equal(readlinkSync(weights), join("..", "..", "blobs", sha256Hex(original)));
  assert.deepEqual(readFileSync(weights), original);
  assert.ok(existsSync(join(repoDir(), ".no_exist", MAIN, "chat_template.jinja")));
  assert.equal(walk(join(repoDir(), "blobs")).length, 6);

  const checkpoint = openCheckpoint(dir);
  assert.equal(checkpoint.names.length, 20);
  checkpoint.close();
  const tokenizer = await loadTokenizer(dir);
  assert.equal(tokenizer.eosTokenId, 2);
  assert.ok(!server.requests.some((r) => r.path.includes("pytorch_model.bin")));
  assert.ok(!server.requests.some((r) => r.path.includes("README.md")));
});

test("LFS file comes from the CDN", async () => {
  await resolveModelDir("tiny/stories", options());
  const cdn = server.requests.filter((r) => r.server === "cdn");
  assert.equal(cdn.length, 1);
  assert.match(cdn[0].path, /^\/lfs\/[0-9a-f]{64}$/);
});

test("second resolve downloads nothing", async () => {
  await resolveModelDir("tiny/stories", options());
  server.requests.length = 0;
  const dir = await resolveModelDir("tiny/stories", options());
  assert.equal(dir, join(repoDir(), "snapshots", MAIN));
  assert.deepEqual(
    server.requests.map((r) => `${r.method} ${r.path}`),
    ["GET /api/models/tiny/stories/revision/main"],
  );
});

test("revision by branch and by commit", async () => {
  const dir = await resolveModelDir("tiny/stories@v1", options());
  assert.equal(dir, join(repoDir(), "snapshots", V1));
  assert.equal(readFileSync(join(repoDir(), "refs", "v1"), "utf8"), V1);
  assert.ok(server.requests.some((r) => r.path === `/tiny/stories/resolve/${V1}/config.json`));

  const byCommit = await resolveModelDir(`tiny/stories@${MAIN}`, options());
  assert.equal(byCommit, join(repoDir(), "snapshots", MAIN));
  assert.equal(existsSync(join(repoDir(), "refs", MAIN)), false, "a commit needs no ref");
  server.requests.length = 0;
  assert.equal(await resolveModelDir(`tiny/stories@${MAIN}`, options()), byCommit);
  assert.equal(server.requests.length, 0, "a complete snapshot at a commit needs no request");
  // Both snapshots share the blobs, because the files are identical.
  assert.equal(walk(join(repoDir(), "blobs")).length, 6);
});

test("sharded repository fetches every shard", async () => {
  const dir = await resolveModelDir("tiny/sharded", options());
  assert.deepEqual(walk(dir), [
    "config.json",
    "model-00001-of-00002.safetensors",
    "model-00002-of-00002.safetensors",
    "model.safetensors.index.json",
  ]);
  const checkpoint = openCheckpoint(dir);
  assert.equal(checkpoint.names.length, 20);
  checkpoint.close();
});

test("pickle-only repository is rejected", async () => {
  await assert.rejects(
    resolveModelDir("tiny/pickle", options()),
    /tiny\/pickle@main has no model.safetensors .*only PyTorch pickle weights \(pytorch_model.bin\)/,
  );
});

test("missing file and repository give 404 errors", async () => {
  await assert.rejects(
    downloadFile({ repo: "tiny/stories", file: "nope.json", ...options() }),
    (err: HubError) => {
      assert.equal(err.kind, "not-found");
      assert.match(
        err.message,
        /tiny\/stories@main: nope\.json: not found \(HTTP 404 EntryNotFound\)/,
      );
      return true;
    },
  );
  await assert.rejects(resolveModelDir("tiny/absent", options()), (err: HubError) => {
    assert.equal(err.kind, "not-found");
    assert.match(err.message, /HTTP 401 RepositoryNotFound.*HF_TOKEN/);
    return true;
  });
  await assert.rejects(
    resolveModelDir("tiny/stories@nobranch", options()),
    /HTTP 404 RevisionNotFound/,
  );
  assert.deepEqual(walk(join(repoDir(), "blobs")), []);
});

test("mistyped local path is not looked up", async () => {
  const work = mkdtempSync(join(tmpdir(), "tslora-hub-local-"));
  mkdirSync(join(work, "models"));
  const previous = process.cwd();
  process.chdir(work);
  try {
    const cases = ["models/TinyStories-65K", "./TinyStories-65K", "a/b/c", "~/models/x"];
    for (const id of cases) {
      await assert.rejects(resolveModelDir(id, options()), (err: Error) => {
        assert.match(err.message, /^hub: model folder \/\S+ not found/, id);
        assert.ok(err.message.includes(join(work, id)), `${id}: ${err.message}`);
        assert.doesNotMatch(err.message, /Hub model id failed/, id);
        return true;
      });
    }
  } finally {
    process.chdir(previous);
  }
  assert.deepEqual(server.requests, []);
});

test("failed Hub lookup also reports the missing folder", async () => {
  await assert.rejects(resolveModelDir("tiny/absent", options()), (err: HubError) => {
    assert.equal(err.kind, "not-found");
    const folder = join(process.cwd(), "tiny/absent");
    assert.ok(err.message.startsWith(`hub: model folder ${folder} not found. `), err.message);
    assert.match(err.message, /Looking up "tiny\/absent" as a Hub model id failed too: .*HTTP 401/);
    return true;
  });
  const dead = options({ endpoint: await closedLoopbackEndpoint() });
  await assert.rejects(resolveModelDir("owner/name", dead), (err: HubError) => {
    assert.equal(err.kind, "network");
    assert.match(err.message, /^hub: model folder \S+owner\/name not found\. Looking up/);
    assert.match(err.message, /failed: .*ECONNREFUSED/);
    return true;
  });
});

test("renamed repository follows the redirect", async () => {
  server.renamed.set("old/stories", "tiny/stories");
  const path = await downloadFile({ repo: "old/stories", file: "config.json", ...options() });
  assert.deepEqual(
    readFileSync(path),
    readFileSync(fixture("models/TinyStories-656K/config.json")),
  );
  const hubPaths = server.requests.map((r) => `${r.method} ${r.path}`);
  assert.ok(hubPaths.includes("HEAD /old/stories/resolve/main/config.json"));
  assert.ok(hubPaths.includes("HEAD /tiny/stories/resolve/main/config.json"));
  assert.ok(path.startsWith(join(cacheDir, "models--old--stories", "snapshots", MAIN)));
});

test("cut-off download leaves no cache entry", async () => {
  server.cutOff.add("model.safetensors");
  await assert.rejects(resolveModelDir("tiny/stories", options()), (err: HubError) => {
    assert.equal(err.kind, "incomplete");
    assert.match(
      err.message,
      /download of model.safetensors was cut off after \d+ of 1314128 bytes/,
    );
    assert.match(err.message, /Nothing was cached/);
    return true;
  });
  const blobs = walk(join(repoDir(), "blobs"));
  const original = readFileSync(fixture("models/TinyStories-656K/model.safetensors"));
  assert.ok(!blobs.includes(sha256Hex(original)), "no blob for the cut-off file");
  assert.ok(
    blobs.every((b) => !b.includes("incomplete") && !b.includes(".tmp")),
    blobs.join(),
  );
  assert.equal(existsSync(join(repoDir(), "snapshots", MAIN, "model.safetensors")), false);
  await assert.rejects(resolveModelDir("tiny/stories", options({ offline: true })), /offline mode/);

  server.cutOff.clear();
  const dir = await resolveModelDir("tiny/stories", options());
  assert.deepEqual(readFileSync(join(dir, "model.safetensors")), original);
});

test("stalled download times out", async () => {
  server.stall.add("tokenizer.json");
  await assert.rejects(
    downloadFile({
      repo: "tiny/stories",
      file: "tokenizer.json",
      ...options({ idleTimeoutMs: 300 }),
    }),
    /tokenizer.json was cut off after \d+ of 86434 bytes \(no data for 300 ms\)/,
  );
  assert.deepEqual(walk(join(repoDir(), "blobs")), []);
});

test("silent server times out", async () => {
  // A listener that accepts connections and never sends a byte.
  const sockets: Socket[] = [];
  const silent = createNetServer((socket) => sockets.push(socket));
  await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
  const { port } = silent.address() as AddressInfo;
  try {
    const hub = options({ endpoint: `http://127.0.0.1:${port}`, idleTimeoutMs: 200 });
    await assert.rejects(resolveModelDir("tiny/stories", hub), (err: HubError) => {
      assert.equal(err.kind, "network");
      assert.match(err.message, /revision\/main timed out after 200 ms without a response/);
      return true;
    });
  } finally {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => silent.close(() => resolve()));
  }
});

test("corrupt LFS body fails the sha256 check", async () => {
  server.corrupt.add("model.safetensors");
  await assert.rejects(resolveModelDir("tiny/stories", options()), (err: HubError) => {
    assert.equal(err.kind, "integrity");
    assert.match(err.message, /sha256 [0-9a-f]{64} does not match the Hub's ETag/);
    return true;
  });
  assert.equal(walk(join(repoDir(), "blobs")).length, 5);
});

test("offline mode uses only the cache", async () => {
  await assert.rejects(
    resolveModelDir("tiny/stories", options({ offline: true })),
    (err: HubError) => {
      assert.equal(err.kind, "offline");
      assert.match(err.message, /HF_HUB_OFFLINE.*tiny\/stories@main is not in the cache/);
      assert.ok(err.message.includes(repoDir()));
      return true;
    },
  );
  assert.equal(server.requests.length, 0);

  const online = await resolveModelDir("tiny/stories", options());
  server.requests.length = 0;
  assert.equal(await resolveModelDir("tiny/stories", options({ offline: true })), online);
  const config = await downloadFile({
    repo: "tiny/stories",
    file: "config.json",
    ...options({ offline: true }),
  });
  assert.equal(config, join(online, "config.json"));
  assert.deepEqual(await listRepoFiles("tiny/stories", options({ offline: true })), walk(online));
  await assert.rejects(
    downloadFile({ repo: "tiny/stories", file: "README.md", ...options({ offline: true }) }),
    /missing: README.md/,
  );
  assert.equal(server.requests.length, 0);
});

test("unreachable endpoint falls back to the cache", async () => {
  const online = await resolveModelDir("tiny/stories", options());
  // A port that was just released has no listener, so the connection is refused at once.
  const dead = options({ endpoint: await closedLoopbackEndpoint() });
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(w.message);
  process.on("warning", onWarning);
  try {
    assert.equal(await resolveModelDir("tiny/stories", dead), online);
    await new Promise((resolve) => setImmediate(resolve));
  } finally {
    process.off("warning", onWarning);
  }
  assert.ok(
    warnings.some((w) => /Using the cached copy/.test(w)),
    warnings.join("\n"),
  );
  await assert.rejects(resolveModelDir("tiny/sharded", dead), (err: HubError) => {
    assert.equal(err.kind, "network");
    assert.match(err.message, /failed: .*ECONNREFUSED/);
    return true;
  });
});

test("token is sent to the Hub only", async () => {
  server.requiredToken = "hf_test_token";
  await assert.rejects(resolveModelDir("tiny/stories", options()), /HTTP 401.*set HF_TOKEN/);
  server.requests.length = 0;
  await resolveModelDir("tiny/stories", options({ token: "hf_test_token" }));
  const hub = server.requests.filter((r) => r.server === "hub");
  const cdn = server.requests.filter((r) => r.server === "cdn");
  assert.ok(hub.length > 0);
  assert.ok(hub.every((r) => r.authorization === "Bearer hf_test_token"));
  assert.equal(cdn.length, 1);
  assert.equal(cdn[0].authorization, undefined, "credentials must not reach the CDN");
});

test("dataset files use the datasets layout", async () => {
  const path = await downloadFile({
    repo: "tiny/squad",
    repoType: "dataset",
    file: "data/train.jsonl",
    ...options(),
  });
  assert.equal(
    path,
    join(cacheDir, "datasets--tiny--squad", "snapshots", DATA, "data", "train.jsonl"),
  );
  assert.equal(readFileSync(path, "utf8"), '{"text": "a"}\n');
  assert.equal(readFileSync(join(cacheDir, "datasets--tiny--squad", "refs", "main"), "utf8"), DATA);
  assert.ok(
    server.requests.some((r) => r.path === "/datasets/tiny/squad/resolve/main/data/train.jsonl"),
  );
  assert.deepEqual(await listRepoFiles("tiny/squad", { repoType: "dataset", ...options() }), [
    "data/train.jsonl",
    "README.md",
  ]);
});

test("revision with slashes is encoded", async () => {
  const revision = "refs/convert/parquet";
  const path = await downloadFile({
    repo: "tiny/squad",
    repoType: "dataset",
    revision,
    file: "README.md",
    ...options(),
  });
  const repo = join(cacheDir, "datasets--tiny--squad");
  assert.equal(path, join(repo, "snapshots", PARQUET, "README.md"));
  assert.equal(readFileSync(join(repo, "refs", "refs", "convert", "parquet"), "utf8"), PARQUET);
  assert.ok(
    server.requests.some(
      (r) => r.path === "/datasets/tiny/squad/resolve/refs%2Fconvert%2Fparquet/README.md",
    ),
  );
  const files = await listRepoFiles("tiny/squad", { repoType: "dataset", revision, ...options() });
  assert.deepEqual(files, ["data/train.jsonl", "README.md"]);
});

test("progress reports reach the total", async () => {
  const reports: DownloadProgress[] = [];
  await downloadFile({
    repo: "tiny/stories",
    file: "model.safetensors",
    ...options({ onProgress: (p) => reports.push({ ...p }) }),
  });
  assert.ok(reports.length >= 2);
  const last = reports[reports.length - 1];
  assert.equal(last.done, true);
  assert.equal(last.receivedBytes, 1314128);
  assert.equal(last.totalBytes, 1314128);
  for (let i = 1; i < reports.length; i++) {
    assert.ok(reports[i].receivedBytes >= reports[i - 1].receivedBytes);
  }
});

test("formatProgress shows bytes, rate and ETA", () => {
  const line = formatProgress({
    file: "model.safetensors",
    receivedBytes: 12_000_000,
    totalBytes: 48_000_000,
    bytesPerSecond: 6_000_000,
    done: false,
  });
  assert.equal(line, "model.safetensors 12.0 MB / 48.0 MB 25% 6.0 MB/s ETA 6s");
});

test("local folder and invalid ids", async () => {
  const local = fixture("models/TinyStories-656K");
  assert.equal(await resolveModelDir(local, options()), local);
  await assert.rejects(resolveModelDir("./no/such/folder", options()), /folder .* not found/);
  await assert.rejects(resolveModelDir(join(local, "config.json"), options()), /is a file/);
  await assert.rejects(resolveModelDir("bad id!", options()), /invalid model id "bad id!"/);
  assert.deepEqual(parseRepoId("a/b@refs/pr/1"), { repo: "a/b", revision: "refs/pr/1" });
  assert.deepEqual(parseRepoId("gpt2"), { repo: "gpt2", revision: "main" });
  assert.throws(() => parseRepoId("a/b@../x"), /invalid model id/);
  await assert.rejects(
    downloadFile({ repo: "tiny/stories", file: "../../escape", ...options() }),
    /invalid file name "..\/..\/escape"/,
  );
  assert.equal(server.requests.length, 0);
});

test("settings come from the environment", () => {
  const settings = resolveHubSettings(
    {},
    {
      HF_HOME: "/tmp/hf-home",
      HF_ENDPOINT: "http://127.0.0.1:1234/",
      HF_TOKEN: "hf_env",
      HF_HUB_OFFLINE: "1",
    },
  );
  assert.equal(settings.cacheDir, "/tmp/hf-home/hub");
  assert.equal(settings.endpoint, "http://127.0.0.1:1234");
  assert.equal(settings.token, "hf_env");
  assert.equal(settings.offline, true);
  const defaults = resolveHubSettings({}, { HOME: "/home/x" });
  assert.equal(defaults.endpoint, "https://huggingface.co");
  assert.equal(defaults.offline, false);
  assert.equal(defaults.token, null);
  assert.equal(resolveHubSettings({}, { HF_HUB_CACHE: "/c" }).cacheDir, "/c");
  assert.equal(resolveHubSettings({ offline: false }, { HF_HUB_OFFLINE: "1" }).offline, false);
});
