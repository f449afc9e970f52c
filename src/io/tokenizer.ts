// Tokenizers of Hugging Face model folders, through @huggingface/tokenizers (tokenizer.json +
// tokenizer_config.json). This file adds what that package leaves to the caller: the special
// token ids with their fallbacks to generation_config.json and config.json, the chat template,
// and errors that name the folder.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";
import { readJsonObject } from "./config.js";

export interface TextTokenizer {
  encode(text: string, opts?: { addSpecialTokens?: boolean }): number[];
  decode(ids: readonly number[], opts?: { skipSpecialTokens?: boolean }): string;
  tokenToId(token: string): number | null;
  idToToken(id: number): string | null;
  /** Number of ids, added tokens included (the largest id + 1). */
  readonly vocabSize: number;
  readonly bosTokenId: number | null;
  /** The tokenizer's EOS, else the first EOS of generation_config.json, else of config.json. */
  readonly eosTokenId: number | null;
  /** Every EOS id from the tokenizer, generation_config.json and config.json, without repeats. */
  readonly eosTokenIds: readonly number[];
  readonly padTokenId: number | null;
  /** The id that text without a token of its own becomes, or null for byte-level tokenizers. */
  readonly unkTokenId?: number | null;
  /** Ids of the tokens marked special (BOS, EOS, PAD, chat markers, ...). */
  readonly specialTokenIds: ReadonlySet<number>;
  /** The Jinja chat template, or null when the model has none. */
  readonly chatTemplate: string | null;
}

type Json = Record<string, unknown>;

function readOptionalJson(path: string, what: string): Json | null {
  return existsSync(path) ? readJsonObject(path, what) : null;
}

/** Returns a special token's text from "<s>" or {"content": "<s>", ...} (AddedToken form). */
function tokenContent(value: unknown): string | null {
  if (typeof value === "string") return value;
  if (typeof value === "object" && value !== null && "content" in value) {
    const content = (value as { content: unknown }).content;
    return typeof content === "string" ? content : null;
  }
  return null;
}

/** Returns the valid ids of a field that is one integer or a list. */
function idList(value: unknown): number[] {
  const list = Array.isArray(value) ? value : [value];
  return list.filter((v): v is number => Number.isSafeInteger(v) && v >= 0);
}

/**
 * Reads the chat template from chat_template.jinja (written by newer transformers) or from
 * tokenizer_config.json, where it is a string or a list of {name, template} with a "default".
 */
function readChatTemplate(dir: string, config: Json): string | null {
  const jinjaPath = join(dir, "chat_template.jinja");
  if (existsSync(jinjaPath)) return readFileSync(jinjaPath, "utf8");
  const value = config.chat_template;
  if (typeof value === "string") return value;
  if (Array.isArray(value)) {
    const named = value as { name?: unknown; template?: unknown }[];
    const chosen = named.find((t) => t.name === "default") ?? named[0];
    if (chosen && typeof chosen.template === "string") return chosen.template;
  }
  return null;
}

class HubTokenizer implements TextTokenizer {
  readonly vocabSize: number;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  readonly eosTokenIds: readonly number[];
  readonly padTokenId: number | null;
  readonly unkTokenId: number | null;
  readonly specialTokenIds: ReadonlySet<number>;
  readonly chatTemplate: string | null;

  constructor(
    private readonly inner: Tokenizer,
    private readonly dir: string,
    ids: { bos: number | null; eos: number[]; pad: number | null; unk: number | null },
    chatTemplate: string | null,
  ) {
    let maxId = -1;
    for (const id of inner.get_vocab(true).values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;
    this.bosTokenId = ids.bos;
    this.eosTokenId = ids.eos[0] ?? null;
    this.eosTokenIds = ids.eos;
    this.padTokenId = ids.pad;
    this.unkTokenId = ids.unk;
    this.specialTokenIds = new Set(
      [...inner.get_added_tokens_decoder()].filter(([, t]) => t.special).map(([id]) => id),
    );
    this.chatTemplate = chatTemplate;
  }

  encode(text: string, opts: { addSpecialTokens?: boolean } = {}): number[] {
    return this.inner.encode(text, { add_special_tokens: opts.addSpecialTokens ?? true }).ids;
  }

  decode(ids: readonly number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new Error(
          `decode: ids[${i}] is ${id}, expected an integer in [0, ${this.vocabSize}) for the ` +
            `tokenizer in ${this.dir}; the ids come from another tokenizer or model`,
        );
      }
    }
    // The package rejects an empty list, but an empty sequence decodes to "".
    if (ids.length === 0) return "";
    return this.inner.decode([...ids], { skip_special_tokens: opts.skipSpecialTokens ?? false });
  }

  tokenToId(token: string): number | null {
    return this.inner.token_to_id(token) ?? null;
  }

  idToToken(id: number): string | null {
    return this.inner.id_to_token(id) ?? null;
  }
}

/**
 * Loads the tokenizer of a model folder. Needs tokenizer.json; tokenizer_config.json,
 * special_tokens_map.json, generation_config.json and config.json are optional sources of the
 * special tokens and the chat template.
 */
export async function loadTokenizer(dir: string): Promise<TextTokenizer> {
  const tokenizerPath = join(dir, "tokenizer.json");
  if (!existsSync(tokenizerPath)) {
    throw new Error(
      `loadTokenizer: ${tokenizerPath} not found. This library reads only the fast-tokenizer ` +
        `file tokenizer.json. Download it with the model, or create it with transformers ` +
        `(AutoTokenizer.from_pretrained(...).save_pretrained(folder)).`,
    );
  }
  const tokenizerJson = readJsonObject(tokenizerPath, "loadTokenizer");
  const config = readOptionalJson(join(dir, "tokenizer_config.json"), "loadTokenizer") ?? {};
  const specialMap = readOptionalJson(join(dir, "special_tokens_map.json"), "loadTokenizer") ?? {};
  const generation = readOptionalJson(join(dir, "generation_config.json"), "loadTokenizer") ?? {};
  const modelConfig = readOptionalJson(join(dir, "config.json"), "loadTokenizer") ?? {};

  let inner: Tokenizer;
  try {
    inner = new Tokenizer(tokenizerJson, config);
  } catch (err) {
    throw new Error(
      `loadTokenizer: ${tokenizerPath} could not be loaded by @huggingface/tokenizers ` +
        `(${(err as Error).message}). Check that it is a complete tokenizer.json`,
    );
  }

  // The token named in tokenizer_config.json or special_tokens_map.json comes first, because
  // transformers' tokenizer.eos_token_id reads only those files. The id fields of
  // generation_config.json and config.json are the fallbacks.
  const idOfSpecial = (key: string): number | null => {
    const content = tokenContent(config[key]) ?? tokenContent(specialMap[key]);
    return content === null ? null : (inner.token_to_id(content) ?? null);
  };
  const fromFiles = (key: string): number[] => [
    ...idList(generation[key]),
    ...idList(modelConfig[key]),
  ];
  const eosFirst = idOfSpecial("eos_token");
  const eos = [
    ...new Set([...(eosFirst === null ? [] : [eosFirst]), ...fromFiles("eos_token_id")]),
  ];
  const ids = {
    bos: idOfSpecial("bos_token") ?? fromFiles("bos_token_id")[0] ?? null,
    eos,
    pad: idOfSpecial("pad_token") ?? fromFiles("pad_token_id")[0] ?? null,
    unk: unkTokenOf(tokenizerJson, inner) ?? idOfSpecial("unk_token"),
  };
  return new HubTokenizer(inner, dir, ids, readChatTemplate(dir, config));
}

/** Returns the id of tokenizer.json's model.unk_token, or null when it names none. */
function unkTokenOf(tokenizerJson: Json, inner: Tokenizer): number | null {
  const model = tokenizerJson.model;
  if (typeof model !== "object" || model === null) return null;
  const unk = (model as Json).unk_token;
  return typeof unk === "string" ? (inner.token_to_id(unk) ?? null) : null;
}
