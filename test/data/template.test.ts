import assert from "node:assert/strict";
import { test } from "node:test";
import {
  parseTemplate,
  PROMPT_COMPLETION_TEMPLATE,
  renderTemplate,
  SQUAD_TEMPLATE,
} from "../../src/data/template.js";

test("SQuAD template splits before the answer", () => {
  const template = parseTemplate(SQUAD_TEMPLATE);
  assert.deepEqual(template.fields, ["context", "question", "answer"]);
  assert.equal(template.truncateField, "context");
  const out = renderTemplate(template, { context: "C.", question: "Q?", answer: "A" }, "test");
  assert.equal(out.prompt, "Context: C.\nQuestion: Q?\nAnswer:");
  assert.equal(out.completion, " A");
});

test("template keeps text after the answer", () => {
  const template = parseTemplate("Q: {question}\nA:\t {answer} ({source})", {
    truncateField: null,
  });
  const out = renderTemplate(template, { question: "x", answer: "y", source: "z" }, "test");
  assert.equal(out.prompt, "Q: x\nA:");
  assert.equal(out.completion, "\t y (z)");
  assert.equal(template.truncateField, null);
});

test("template reads literal braces", () => {
  const template = parseTemplate("{{json}} {q} {{{answer}}}");
  const out = renderTemplate(template, { q: "1", answer: "2" }, "test");
  assert.equal(out.prompt + out.completion, "{json} 1 {2}");
});

test("prompt/completion template", () => {
  const template = parseTemplate(PROMPT_COMPLETION_TEMPLATE, {
    answerField: "completion",
    truncateField: "prompt",
    truncateSide: "left",
  });
  const out = renderTemplate(template, { prompt: "2+2=", completion: " 4" }, "test");
  assert.equal(out.prompt, "2+2=");
  assert.equal(out.completion, " 4");
});

test("template without answer slot is rejected", () => {
  assert.throws(
    () => parseTemplate("Context: {context}\nQuestion: {question}\nAnswer:"),
    /has no \{answer\} slot; the answer slot marks where the learned completion starts/,
  );
  assert.throws(() => parseTemplate("{answer} {answer}"), /has 2 \{answer\} slots/);
  assert.throws(() => parseTemplate("{sql}", { answerField: "answer" }), /no \{answer\} slot/);
  assert.doesNotThrow(() => parseTemplate("Q: {q} A: {sql}", { answerField: "sql" }));
});

test("template syntax errors", () => {
  assert.throws(() => parseTemplate("{bad name} {answer}"), /invalid slot at offset 0/);
  assert.throws(() => parseTemplate("{unclosed {answer}"), /invalid slot at offset 0/);
  assert.throws(() => parseTemplate("a } {answer}"), /unmatched "\}" at offset 2/);
  assert.throws(
    () => parseTemplate("{q} {answer}", { truncateField: "context" }),
    /truncateField "context" is not a slot before the answer/,
  );
  assert.throws(
    () => parseTemplate("{q} {answer}", { truncateField: "answer" }),
    /never shortened/,
  );
});

test("renderTemplate names the sample when a field is missing", () => {
  const template = parseTemplate(SQUAD_TEMPLATE);
  assert.throws(
    () => renderTemplate(template, { context: "c", answer: "a" }, "data.jsonl:4"),
    /data\.jsonl:4: the template slot \{question\} has no value; the sample has the fields context, answer/,
  );
});
