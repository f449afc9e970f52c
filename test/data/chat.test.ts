import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { ChatRenderer } from "../../src/data/chat.js";
import { readJsonl } from "../../src/data/jsonl.js";
import { IGNORE_INDEX, tokenizeSamples } from "../../src/data/tokenize.js";
import type { ChatMessage, Sample } from "../../src/data/types.js";
import { loadTokenizer } from "../../src/io/tokenizer.js";
import { fixture } from "../helpers/fixtures.js";

const gpt2 = await loadTokenizer(fixture("tokenizers/gpt2"));
const tinyStories = await loadTokenizer(fixture("models/TinyStories-656K"));

// A ChatML template, written for these tests; none of the fixture tokenizers has a chat template.
const CHATML =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + " +
  "message['content'] + '<|im_end|>\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

// A Llama-2-style template that writes the BOS and EOS tokens itself. The space before the EOS
// is needed by TinyStories-656K: its added tokens are normalised with the Prepend("▁")
// normaliser, so inside a text "<|end_story|>" is matched only after a space.
const INST =
  "{{ bos_token }}{% for m in messages %}{% if m.role == 'user' %}[INST] {{ m.content }} [/INST]" +
  "{% else %} {{ m.content }} {{ eos_token }}{% endif %}{% endfor %}";

const conversation: ChatMessage[] = [
  { role: "system", content: "Be brief." },
  { role: "user", content: "Where did the Normans live?" },
  { role: "assistant", content: "In Normandy." },
  { role: "user", content: "When?" },
  { role: "assistant", content: "In the 10th and 11th centuries." },
];

function chatSample(messages: ChatMessage[]): Sample {
  return { kind: "chat", messages, group: "line 1", origin: "chat.jsonl:1" };
}

/** Splits labels into runs of learned tokens, decoded. */
function learnedRuns(labels: Int32Array, decode: (ids: number[]) => string): string[] {
  const runs: string[] = [];
  let run: number[] = [];
  for (const label of labels) {
    if (label !== IGNORE_INDEX) {
      run.push(label);
    } else if (run.length > 0) {
      runs.push(decode(run));
      run = [];
    }
  }
  if (run.length > 0) runs.push(decode(run));
  return runs;
}

test("ChatRenderer finds assistant spans", () => {
  const renderer = new ChatRenderer(gpt2, CHATML);
  const { text, assistantSpans } = renderer.renderWithSpans(conversation, "test");
  assert.ok(text.startsWith("<|im_start|>system\nBe brief.<|im_end|>\n"));
  assert.equal(assistantSpans.length, 2);
  const spans = assistantSpans.map(([start, end]) => text.slice(start, end));
  assert.deepEqual(spans, [
    "In Normandy.<|im_end|>\n",
    "In the 10th and 11th centuries.<|im_end|>\n",
  ]);
});

test("chat examples learn assistant turns only", () => {
  const { examples, report } = tokenizeSamples([chatSample(conversation)], gpt2, {
    maxLength: 512,
    chatTemplate: CHATML,
  });
  assert.equal(report.examples, 1);
  const example = examples[0];
  const text = new ChatRenderer(gpt2, CHATML).render(conversation);
  assert.deepEqual([...example.inputIds], [...gpt2.encode(text, { addSpecialTokens: false })]);
  const runs = learnedRuns(example.labels, (ids) => gpt2.decode(ids));
  assert.deepEqual(runs, [
    "In Normandy.<|im_end|>\n",
    "In the 10th and 11th centuries.<|im_end|>\n",
  ]);
  assert.equal(
    example.promptLength,
    example.labels.findIndex((l) => l !== IGNORE_INDEX),
  );
});

test("chat template special tokens are learned once", () => {
  const messages = conversation.slice(1);
  const { examples } = tokenizeSamples([chatSample(messages)], tinyStories, {
    maxLength: 512,
    chatTemplate: INST,
  });
  const example = examples[0];
  const bos = tinyStories.bosTokenId;
  const eos = tinyStories.eosTokenId;
  assert.equal(example.inputIds[0], bos, "the template's BOS, not a second one");
  assert.notEqual(example.inputIds[1], bos);
  assert.equal(example.inputIds[example.inputIds.length - 1], eos);
  assert.notEqual(example.inputIds[example.inputIds.length - 2], eos, "no EOS appended twice");
  const eosCount = [...example.labels].filter((label) => label === eos).length;
  assert.equal(eosCount, 2, "each assistant turn's EOS is learned");
  const runs = learnedRuns(example.labels, (ids) => tinyStories.decode(ids));
  assert.equal(runs.length, 2);
  assert.match(runs[0], /In Normandy\.<\|end_story\|>$/);
  assert.match(runs[1], /In the 10th and 11th centuries\.<\|end_story\|>$/);
});

test("chat gets no EOS after the template's end", () => {
  // The template ends each assistant turn with the EOS and a newline, so the example must end
  // with "<eos>\n", and no second EOS may follow.
  const template =
    "{% for m in messages %}{{ m.role + ': ' + m.content + '\\n' }}" +
    "{% if m.role == 'assistant' %}{{ eos_token }}{{ '\\n' }}{% endif %}{% endfor %}" +
    "{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}";
  const messages = conversation.slice(1, 3);
  const { examples } = tokenizeSamples([chatSample(messages)], gpt2, {
    maxLength: 512,
    chatTemplate: template,
  });
  const example = examples[0];
  const text = new ChatRenderer(gpt2, template).render(messages);
  assert.ok(text.endsWith("<|endoftext|>\n"), JSON.stringify(text));
  assert.deepEqual([...example.inputIds], [...gpt2.encode(text, { addSpecialTokens: false })]);
  const eosCount = [...example.inputIds].filter((id) => id === gpt2.eosTokenId).length;
  assert.equal(eosCount, 1, "only the template's EOS");
  const runs = learnedRuns(example.labels, (ids) => gpt2.decode(ids));
  // GPT-2 merges the space after "assistant:" into the first answer token, which is learned.
  assert.deepEqual(runs, [" In Normandy.\n<|endoftext|>\n"]);
});

test("chat without masking learns every token", () => {
  const { examples } = tokenizeSamples([chatSample(conversation)], gpt2, {
    maxLength: 512,
    chatTemplate: CHATML,
    maskPrompt: false,
  });
  assert.deepEqual(examples[0].labels, examples[0].inputIds);
});

test("chat truncation cuts the end or drops", () => {
  const full = tokenizeSamples([chatSample(conversation)], gpt2, {
    maxLength: 512,
    chatTemplate: CHATML,
  }).examples[0];
  const firstLearned = full.labels.findIndex((label) => label !== IGNORE_INDEX);
  assert.equal(full.promptLength, firstLearned);

  const cut = tokenizeSamples([chatSample(conversation)], gpt2, {
    maxLength: firstLearned + 3,
    chatTemplate: CHATML,
  });
  assert.equal(cut.report.truncated, 1);
  const example = cut.examples[0];
  assert.equal(example.inputIds.length, firstLearned + 3);
  assert.deepEqual(
    [...example.inputIds.subarray(0, firstLearned + 2)],
    [...full.inputIds.subarray(0, firstLearned + 2)],
  );
  // The cut turn has not ended, so no EOS is appended.
  assert.equal(example.inputIds[firstLearned + 2], full.inputIds[firstLearned + 2]);
  assert.equal(example.labels[firstLearned + 2], full.inputIds[firstLearned + 2]);
  assert.equal(example.labels[firstLearned - 1], IGNORE_INDEX);
  assert.equal(example.labels[firstLearned], full.inputIds[firstLearned]);

  const tooShort = firstLearned;
  const samples = [chatSample(conversation), chatSample(conversation.slice(0, 3))];
  assert.throws(
    () => tokenizeSamples(samples, gpt2, { maxLength: tooShort, chatTemplate: CHATML }),
    new RegExp(
      `all 2 samples are longer than maxLength ${tooShort} .*at least ${firstLearned + 1}`,
    ),
  );
});

test("chat without assistant turn is rejected", () => {
  const messages = [
    { role: "human", content: "hi" },
    { role: "gpt", content: "hello" },
  ];
  assert.throws(
    () => tokenizeSamples([chatSample(messages)], gpt2, { maxLength: 512, chatTemplate: CHATML }),
    /chat\.jsonl:1: the conversation has no message with role "assistant" \(roles: human, gpt\)/,
  );
  const unmasked = tokenizeSamples([chatSample(messages)], gpt2, {
    maxLength: 512,
    chatTemplate: CHATML,
    maskPrompt: false,
  });
  assert.equal(unmasked.report.examples, 1);
});

test("chat template errors name the sample", () => {
  const strict =
    "{% for m in messages %}{% if m.role == 'system' %}" +
    "{{ raise_exception('System messages are not supported') }}{% endif %}{{ m.content }}{% endfor %}";
  assert.throws(
    () =>
      tokenizeSamples([chatSample(conversation)], gpt2, { maxLength: 512, chatTemplate: strict }),
    /chat\.jsonl:1: the chat template failed \(.*System messages are not supported/,
  );
  assert.throws(
    () =>
      tokenizeSamples([chatSample(conversation)], gpt2, {
        maxLength: 512,
        chatTemplate: "{% for %}",
      }),
    /the chat template is invalid Jinja/,
  );
});

test("chat requires a chat template", () => {
  assert.equal(gpt2.chatTemplate, null);
  assert.throws(
    () => tokenizeSamples([chatSample(conversation)], gpt2, { maxLength: 512 }),
    (err: Error) => {
      assert.match(err.message, /the tokenizer has no chat template/);
      assert.match(err.message, /Add a chat_template field to tokenizer_config\.json/);
      assert.match(err.message, /chat_template\.jinja file to the model folder/);
      assert.match(err.message, /convert the data to \{"prompt", "completion"\} or \{"text"\}/);
      assert.match(err.message, /pass the chatTemplate option of tokenizeSamples/);
      assert.doesNotMatch(err.message, /pass a chat template/);
      return true;
    },
  );
});

test("chat rejects a template that is not prefix-stable", () => {
  const counting = "{% for m in messages %}{{ m.content }}{% endfor %}({{ messages | length }})";
  assert.throws(
    () =>
      tokenizeSamples([chatSample(conversation)], gpt2, { maxLength: 512, chatTemplate: counting }),
    /chat\.jsonl:1: the chat template does not render messages\[0\.\.2\] as a prefix/,
  );
});

test("chat JSONL file end to end", () => {
  const dir = mkdtempSync(join(tmpdir(), "tslora-chat-"));
  const path = join(dir, "chat.jsonl");
  writeFileSync(
    path,
    JSON.stringify({ messages: conversation }) +
      "\n" +
      JSON.stringify({ messages: conversation.slice(1, 3) }) +
      "\n",
  );
  const { samples } = readJsonl(path);
  const { examples, report } = tokenizeSamples(samples, gpt2, {
    maxLength: 512,
    chatTemplate: CHATML,
  });
  assert.equal(report.examples, 2);
  const runs = learnedRuns(examples[1].labels, (ids) => gpt2.decode(ids));
  assert.deepEqual(runs, ["In Normandy.<|im_end|>\n"]);
});
