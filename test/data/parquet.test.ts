// Parquet and Hub datasets. The Parquet files are written here with hyparquet-writer in the
// schema the Hugging Face datasets library gives SQuAD (answers: struct of two lists), and the
// Hub is the loopback stand-in from test/helpers/hub-server.ts.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { parquetWriteBuffer } from "hyparquet-writer";
import {
  isSplitFile,
  PARQUET_REVISION,
  selectSplitFiles,
  type HubDatasetClient,
} from "../../src/data/hub-dataset.js";
import { loadDataset } from "../../src/data/load.js";
import { readParquetRows } from "../../src/data/parquet.js";
import { readSquad, type SquadQuestion } from "../../src/data/squad.js";
import { readJsonl } from "../../src/data/jsonl.js";
import { fixture } from "../helpers/fixtures.js";
import { startHubServer, type HubServer } from "../helpers/hub-server.js";

const tmp = mkdtempSync(join(tmpdir(), "tslora-parquet-"));
const squad = readSquad(fixture("data/squad/squad2-dev-first5articles.json"));

const STRING = { type: "BYTE_ARRAY", converted_type: "UTF8", repetition_type: "OPTIONAL" } as const;

/** Returns a list<T> column schema: the three-level LIST layout that pyarrow writes. */
function listSchema(name: string, element: Record<string, unknown>) {
  return [
    { name, repetition_type: "OPTIONAL", converted_type: "LIST", num_children: 1 },
    { name: "list", repetition_type: "REPEATED", num_children: 1 },
    { name: "element", repetition_type: "OPTIONAL", ...element },
  ];
}

function squadParquet(questions: readonly SquadQuestion[]): Uint8Array {
  const schema = [
    { name: "root", num_children: 5 },
    { name: "id", ...STRING },
    { name: "title", ...STRING },
    { name: "context", ...STRING },
    { name: "question", ...STRING },
    { name: "answers", repetition_type: "OPTIONAL", num_children: 2 },
    ...listSchema("text", STRING),
    ...listSchema("answer_start", { type: "INT32" }),
  ];
  const column = (name: string, data: unknown[]) => ({ name, data });
  const buffer = parquetWriteBuffer({
    // The schema literals are plain objects; the writer validates them itself.
    schema: schema as Parameters<typeof parquetWriteBuffer>[0]["schema"],
    columnData: [
      column(
        "id",
        questions.map((q) => q.id),
      ),
      column(
        "title",
        questions.map((q) => q.title),
      ),
      column(
        "context",
        questions.map((q) => q.context),
      ),
      column(
        "question",
        questions.map((q) => q.question),
      ),
      column(
        "answers",
        questions.map((q) => ({
          text: q.answers.map((a) => a.text),
          answer_start: q.answers.map((a) => a.answerStart),
        })),
      ),
    ],
  });
  return new Uint8Array(buffer);
}

function writeFile(name: string, data: Uint8Array): string {
  const path = join(tmp, name);
  writeFileSync(path, data);
  return path;
}

test("SQuAD Parquet matches the JSON reader", async () => {
  const path = writeFile("squad.parquet", squadParquet(squad));
  const loaded = await loadDataset(path);
  assert.equal(loaded.format, "squad");
  assert.ok(loaded.questions !== null);
  assert.equal(loaded.questions.length, squad.length);
  assert.equal(loaded.skippedImpossible, 702);
  assert.equal(loaded.samples.length, 705);
  loaded.questions.forEach((q, i) => {
    const expected = squad[i];
    assert.equal(q.id, expected.id);
    assert.equal(q.title, expected.title);
    assert.equal(q.question, expected.question);
    assert.equal(q.context, expected.context);
    assert.deepEqual(q.answers, expected.answers, q.id);
    assert.equal(q.isImpossible, expected.isImpossible, q.id);
    assert.equal(q.articleIndex, expected.articleIndex, q.id);
    assert.equal(q.paragraphIndex, expected.paragraphIndex, q.id);
  });
  assert.equal(new Set(loaded.samples.map((s) => s.group)).size, 5);

  const withNoAnswer = await loadDataset(path, { noAnswerText: "no answer" });
  assert.equal(withNoAnswer.samples.length, 1407);
});

test("text, prompt/completion and messages Parquet", async () => {
  const { samples } = readJsonl(fixture("data/wikisql/valid.jsonl"));
  const texts = samples.map((s) => (s.kind === "text" ? s.text : ""));
  const textPath = writeFile(
    "text.parquet",
    new Uint8Array(
      parquetWriteBuffer({ columnData: [{ name: "text", data: texts, type: "STRING" }] }),
    ),
  );
  const text = await loadDataset(textPath);
  assert.equal(text.format, "text");
  assert.deepEqual(
    text.samples.map((s) => (s.kind === "text" ? s.text : null)),
    texts,
  );
  assert.equal(text.samples[3].origin, `${textPath}: row 3`);

  const pcPath = writeFile(
    "pc.parquet",
    new Uint8Array(
      parquetWriteBuffer({
        columnData: [
          { name: "prompt", data: ["2+2=", "3+3="], type: "STRING" },
          { name: "completion", data: [" 4", " 6"], type: "STRING" },
        ],
      }),
    ),
  );
  const pc = await loadDataset(pcPath);
  assert.equal(pc.format, "prompt-completion");
  assert.deepEqual(pc.samples[1].kind === "fields" && pc.samples[1].fields, {
    prompt: "3+3=",
    completion: " 6",
  });

  const messagesSchema = [
    { name: "root", num_children: 1 },
    { name: "messages", repetition_type: "OPTIONAL", converted_type: "LIST", num_children: 1 },
    { name: "list", repetition_type: "REPEATED", num_children: 1 },
    { name: "element", repetition_type: "OPTIONAL", num_children: 2 },
    { name: "role", ...STRING },
    { name: "content", ...STRING },
  ];
  const conversation = [
    { role: "user", content: "hi" },
    { role: "assistant", content: "hello" },
  ];
  const chatPath = writeFile(
    "chat.parquet",
    new Uint8Array(
      parquetWriteBuffer({
        schema: messagesSchema as Parameters<typeof parquetWriteBuffer>[0]["schema"],
        columnData: [{ name: "messages", data: [conversation] }],
      }),
    ),
  );
  const chat = await loadDataset(chatPath);
  assert.equal(chat.format, "messages");
  assert.deepEqual(chat.samples[0].kind === "chat" && chat.samples[0].messages, conversation);
});

test("Parquet skips blank texts and notes other columns", async () => {
  const path = writeFile(
    "blank-text.parquet",
    new Uint8Array(
      parquetWriteBuffer({
        columnData: [
          { name: "text", data: ["one", "", "  ", "two"], type: "STRING" },
          { name: "prompt", data: ["a", "b", "c", "d"], type: "STRING" },
        ],
      }),
    ),
  );
  const data = await loadDataset(path);
  assert.equal(data.format, "text");
  assert.deepEqual(
    data.samples.map((s) => (s.kind === "text" ? s.text : null)),
    ["one", "two"],
  );
  assert.equal(data.skippedBlank, 2);
  assert.equal(data.samples[1].origin, `${path}: row 3`);
  assert.deepEqual(data.ignoredFields, ["prompt"]);
});

test("Parquet errors name the file and row", async () => {
  const unknown = writeFile(
    "unknown.parquet",
    new Uint8Array(
      parquetWriteBuffer({ columnData: [{ name: "input", data: ["a"], type: "STRING" }] }),
    ),
  );
  await assert.rejects(loadDataset(unknown), /unknown\.parquet: no known columns among input/);

  const wrongType = writeFile(
    "wrong.parquet",
    new Uint8Array(
      parquetWriteBuffer({ columnData: [{ name: "text", data: [1, 2], type: "INT32" }] }),
    ),
  );
  await assert.rejects(
    loadDataset(wrongType),
    /wrong\.parquet: row 0: column "text" must be a string, got number/,
  );

  const badStart = structuredClone(squad.slice(0, 3));
  badStart[2].answers[0].answerStart = 100000;
  const badPath = writeFile("bad-start.parquet", squadParquet(badStart));
  await assert.rejects(
    loadDataset(badPath),
    /bad-start\.parquet: row 2: answers\.answer_start\[0\] is 100000, outside the context/,
  );

  const garbage = writeFile("garbage.parquet", new TextEncoder().encode("not parquet at all"));
  await assert.rejects(
    readParquetRows(garbage),
    /garbage\.parquet: could not read the Parquet file/,
  );
});

test("split files are chosen by name", () => {
  assert.ok(isSplitFile("plain_text/train-00000-of-00001.parquet", "train"));
  assert.ok(isSplitFile("plain_text/train/0000.parquet", "train"));
  assert.ok(isSplitFile("default/partial-train/0003.parquet", "train"));
  assert.ok(isSplitFile("data/validation-00000-of-00002.parquet", "validation"));
  assert.ok(isSplitFile("plain_text/squad-train.parquet", "train"));
  assert.ok(!isSplitFile("plain_text/validation-00000-of-00001.parquet", "train"));
  assert.ok(!isSplitFile("plain_text/train-00000-of-00001.json", "train"));
  assert.ok(!isSplitFile("data/trainer-00000.parquet", "train"));

  const files = [
    "README.md",
    "plain_text/train-00001-of-00002.parquet",
    "plain_text/train-00000-of-00002.parquet",
    "plain_text/validation-00000-of-00001.parquet",
  ];
  assert.deepEqual(selectSplitFiles(files, "train", undefined, "r/s"), [
    "plain_text/train-00000-of-00002.parquet",
    "plain_text/train-00001-of-00002.parquet",
  ]);
  const twoConfigs = [...files, "other/train-00000-of-00001.parquet"];
  assert.throws(
    () => selectSplitFiles(twoConfigs, "train", undefined, "r/s"),
    /r\/s has the split "train" in several configurations \(plain_text, other\); choose one/,
  );
  assert.deepEqual(selectSplitFiles(twoConfigs, "train", "other", "r/s"), [
    "other/train-00000-of-00001.parquet",
  ]);
});

/** Creates a client over a map of revision → files that records every call. */
function fakeClient(revisions: Record<string, Record<string, string>>) {
  const calls: string[] = [];
  const client: HubDatasetClient = {
    async listRepoFiles(repo, opts) {
      calls.push(`list ${repo}@${opts.revision}`);
      const files = revisions[opts.revision];
      if (files === undefined) throw new Error(`revision ${opts.revision} not found`);
      return Object.keys(files);
    },
    async downloadFile(opts) {
      calls.push(`download ${opts.file}@${opts.revision}`);
      return revisions[opts.revision][opts.file];
    },
  };
  return { client, calls };
}

test("Hub dataset falls back to the Parquet conversion", async () => {
  const shard0 = writeFile("shard0.parquet", squadParquet(squad.slice(0, 100)));
  const shard1 = writeFile("shard1.parquet", squadParquet(squad.slice(100, 250)));
  const { client, calls } = fakeClient({
    main: { "README.md": "", "squad.py": "" },
    [PARQUET_REVISION]: {
      "plain_text/train/0001.parquet": shard1,
      "plain_text/train/0000.parquet": shard0,
      "plain_text/validation/0000.parquet": shard0,
    },
  });
  const loaded = await loadDataset("rajpurkar/squad", { client });
  assert.deepEqual(calls, [
    "list rajpurkar/squad@main",
    `list rajpurkar/squad@${PARQUET_REVISION}`,
    `download plain_text/train/0000.parquet@${PARQUET_REVISION}`,
    `download plain_text/train/0001.parquet@${PARQUET_REVISION}`,
  ]);
  assert.deepEqual(loaded.files, [shard0, shard1]);
  assert.ok(loaded.questions !== null);
  assert.deepEqual(
    loaded.questions.map((q) => q.id),
    squad.slice(0, 250).map((q) => q.id),
  );

  const { client: empty } = fakeClient({ main: { "README.md": "" }, [PARQUET_REVISION]: {} });
  await assert.rejects(
    loadDataset("owner/name", { client: empty, split: "test" }),
    /no Parquet files for split "test" in dataset owner\/name@main or refs\/convert\/parquet/,
  );
});

let server: HubServer;
const cacheDir = join(tmp, "hub-cache");
const COMMIT = "5".repeat(40);

before(async () => {
  server = await startHubServer([
    {
      id: "rajpurkar/squad",
      type: "dataset",
      refs: { main: COMMIT },
      files: {
        "README.md": "# SQuAD stand-in\n",
        "plain_text/train-00000-of-00001.parquet": squadParquet(squad.slice(0, 400)),
        "plain_text/validation-00000-of-00001.parquet": squadParquet(squad.slice(400)),
      },
    },
  ]);
});

after(async () => {
  await server.close();
});

test("Hub dataset downloads through the cache", async () => {
  const hub = { endpoint: server.endpoint, cacheDir, onProgress: null, token: null };
  const validation = await loadDataset("rajpurkar/squad", { ...hub, split: "validation" });
  assert.ok(validation.questions !== null);
  assert.equal(validation.questions.length, squad.length - 400);
  assert.equal(validation.questions[0].id, squad[400].id);
  assert.equal(validation.files.length, 1);
  assert.ok(validation.files[0].startsWith(cacheDir), validation.files[0]);
  assert.ok(existsSync(validation.files[0]));
  assert.ok(
    server.requests.some((r) => r.path === "/api/datasets/rajpurkar/squad/revision/main"),
    "listed the repository through the dataset API",
  );

  const train = await loadDataset("rajpurkar/squad", hub);
  assert.ok(train.questions !== null);
  assert.equal(train.questions.length, 400);
  assert.equal(train.samples.length, squad.slice(0, 400).filter((q) => !q.isImpossible).length);

  await assert.rejects(
    loadDataset("rajpurkar/squad", { ...hub, split: "test" }),
    /no Parquet files for split "test"/,
  );
});

test("loadDataset reads folders and rejects unknown sources", async () => {
  const folder = mkdtempSync(join(tmpdir(), "tslora-folder-"));
  writeFileSync(join(folder, "train.jsonl"), '{"text": "a"}\n');
  writeFileSync(join(folder, "valid.jsonl"), '{"text": "b"}\n{"text": "c"}\n');
  assert.equal((await loadDataset(folder)).samples.length, 1);
  const validation = await loadDataset(folder, { split: "validation" });
  assert.equal(validation.samples.length, 2);
  assert.equal(validation.format, "jsonl-text");
  await assert.rejects(loadDataset(folder, { split: "test" }), /no file for split "test"/);
  await assert.rejects(loadDataset(join(folder, "missing.jsonl")), /neither an existing file/);
  const squadJson = await loadDataset(fixture("data/squad/allennlp-squad2.json"));
  assert.equal(squadJson.format, "squad");
  assert.equal(squadJson.skippedImpossible, 1);
});
