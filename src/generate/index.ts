// Text generation: KV cache, sampling, streaming.
export { KVCache, type KVCacheOptions } from "./kv-cache.js";
export {
  generate,
  type FinishReason,
  type GenerateOptions,
  type GenerateResult,
} from "./generate.js";
export { generateText, type GenerateTextOptions } from "./text.js";
export { seededUniform, type SamplingOptions, type UniformSource } from "./sampling.js";
export { TextStream } from "./stream.js";
