import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { readJsonl } from "../../src/data/jsonl.js";
import { fixture } from "../helpers/fixtures.js";

const tmp = mkdtempSync(join(tmpdir(), "tslora-jsonl-"));

function writeLines(name: string, lines: string[]): string {
  const path = join(tmp, name);
  writeFileSync(path, lines.join("\n") + "\n");
  return path;
}

test("readJsonl reads the WikiSQL text lines", () => {
  const { samples, format } = readJsonl(fixture("data/wikisql/train.jsonl"));
  assert.equal(format, "text");
  assert.equal(samples.length, 1000);
  const first = samples[0];
  assert.equal(first.kind, "text");
  assert.ok(first.kind === "text");
  assert.ok(first.text.startsWith("table: 1-1000181-1\ncolumns:"));
  assert.equal(first.group, "line 1");
  assert.match(first.origin, /train\.jsonl:1$/);
  assert.match(samples[999].origin, /train\.jsonl:1000$/);
  assert.equal(readJsonl(fixture("data/wikisql/valid.jsonl")).samples.length, 100);
});

test("readJsonl reads prompt/completion and messages", () => {
  const pc = readJsonl(
    writeLines("pc.jsonl", [
      JSON.stringify({ prompt: "2+2=", completion: " 4" }),
      "",
      JSON.stringify({ prompt: "3+3=", completion: " 6", extra: 1 }),
    ]),
  );
  assert.equal(pc.format, "prompt-completion");
  assert.equal(pc.samples.length, 2);
  assert.deepEqual(pc.samples[1].kind === "fields" && pc.samples[1].fields, {
    prompt: "3+3=",
    completion: " 6",
  });
  assert.equal(pc.samples[1].group, "line 3");

  const chat = readJsonl(
    writeLines("chat.jsonl", [
      JSON.stringify({
        messages: [
          { role: "user", content: "hi" },
          { role: "assistant", content: "hello" },
        ],
      }),
    ]),
  );
  assert.equal(chat.format, "messages");
  assert.deepEqual(chat.samples[0].kind === "chat" && chat.samples[0].messages[1], {
    role: "assistant",
    content: "hello",
  });
});

test("readJsonl skips a byte order mark", () => {
  const path = join(tmp, "bom.jsonl");
  writeFileSync(path, '\uFEFF{"text": "a"}\r\n{"text": "b"}\r\n');
  const { samples } = readJsonl(path);
  assert.equal(samples.length, 2);
  assert.equal(samples[1].kind === "text" && samples[1].text, "b");
});

test("readJsonl groups by a field", () => {
  const path = writeLines("groups.jsonl", [
    JSON.stringify({ text: "a", doc: "x" }),
    JSON.stringify({ text: "b", doc: "y" }),
    JSON.stringify({ text: "c", doc: "x" }),
  ]);
  const { samples } = readJsonl(path, { groupField: "doc" });
  assert.deepEqual(
    samples.map((s) => s.group),
    ["doc=x", "doc=y", "doc=x"],
  );
  const missing = writeLines("nogroup.jsonl", [JSON.stringify({ text: "a" })]);
  assert.throws(
    () => readJsonl(missing, { groupField: "doc" }),
    /nogroup\.jsonl:1: the group field "doc" must be a string or number, got undefined/,
  );
});

test("readJsonl reads template fields", () => {
  const path = writeLines("fields.jsonl", [
    JSON.stringify({ question: "q", sql: "SELECT 1", n: 3 }),
  ]);
  const { samples, format } = readJsonl(path, { fields: true });
  assert.equal(format, "fields");
  assert.deepEqual(samples[0].kind === "fields" && samples[0].fields, {
    question: "q",
    sql: "SELECT 1",
    n: "3",
  });
});

test("readJsonl errors name file and line", () => {
  const cases: [string, string[], RegExp][] = [
    ["bad.jsonl", ['{"text": "a"}', '{"text": "b",}'], /bad\.jsonl:2: invalid JSON/],
    ["array.jsonl", ["[1, 2]"], /array\.jsonl:1: each line must be a JSON object, got array/],
    [
      "type.jsonl",
      ['{"text": "a"}', "", '{"text": 5}'],
      /type\.jsonl:3: the field "text" must be a string, got number/,
    ],
    ["missing.jsonl", ['{"prompt": "a"}'], /missing\.jsonl:1: the field "completion" is missing/],
    ["unknown.jsonl", ['{"input": "a"}'], /unknown\.jsonl:1: unknown line format with keys input/],
    [
      "mixed.jsonl",
      ['{"text": "a"}', '{"prompt": "a", "completion": "b"}'],
      /mixed\.jsonl:2: this line is in the prompt-completion format but line 1 is in the text format/,
    ],
    [
      "role.jsonl",
      ['{"messages": [{"role": "user"}]}'],
      /role\.jsonl:1: messages\[0\]: the field "content" is missing/,
    ],
    ["empty.jsonl", ["", "  "], /empty\.jsonl: the dataset is empty/],
  ];
  for (const [name, lines, pattern] of cases) {
    const path = writeLines(name, lines);
    assert.throws(() => readJsonl(path), pattern, name);
  }
});

test("readJsonl names the first line that is not UTF-8", () => {
  const path = join(tmp, "latin1.jsonl");
  writeFileSync(
    path,
    Buffer.from('{"text": "plain"}\n{"text": "Caf\u00e9 cr\u00e8me"}\n', "latin1"),
  );
  assert.throws(() => readJsonl(path), /latin1\.jsonl:2: the file is not valid UTF-8/);
});

test("readJsonl rejects UTF-16 text", () => {
  const path = join(tmp, "utf16.jsonl");
  writeFileSync(path, Buffer.from('\ufeff{"text": "a"}\n', "utf16le"));
  assert.throws(() => readJsonl(path), /utf16\.jsonl is UTF-16 text.*convert it to UTF-8/);
});

test("readJsonl skips and counts blank texts", () => {
  const path = writeLines("blank.jsonl", [
    '{"text": "first"}',
    '{"text": ""}',
    '{"text": " \\n "}',
    '{"text": "second"}',
  ]);
  const data = readJsonl(path);
  assert.deepEqual(
    data.samples.map((s) => (s.kind === "text" ? s.text : null)),
    ["first", "second"],
  );
  assert.equal(data.skippedBlank, 2);
  assert.match(data.samples[1].origin, /blank\.jsonl:4$/);
  const allBlank = writeLines("all-blank.jsonl", ['{"text": ""}']);
  assert.throws(
    () => readJsonl(allBlank),
    /all-blank\.jsonl: the dataset is empty \(its one text is blank\)/,
  );
});

test("readJsonl reports fields of another format", () => {
  const path = writeLines("mixed.jsonl", [
    '{"prompt": "2+2=", "completion": " 4", "text": "2+2= 4"}',
    '{"prompt": "3+3=", "completion": " 6"}',
  ]);
  const data = readJsonl(path);
  assert.equal(data.format, "prompt-completion");
  assert.deepEqual(data.ignoredFields, ["text"]);
  const chat = writeLines("chat-with-prompt.jsonl", [
    '{"prompt": "hi", "messages": [{"role": "user", "content": "hi"}]}',
  ]);
  assert.deepEqual(readJsonl(chat).ignoredFields, ["prompt"]);
  assert.deepEqual(readJsonl(fixture("data/wikisql/valid.jsonl")).ignoredFields, []);
});
