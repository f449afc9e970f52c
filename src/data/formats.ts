// The record formats that JSONL lines and Parquet rows share, by the fields each one reads.

// In the order the readers try the formats, so a record with "messages" is a chat whatever else
// it has.
const FORMAT_FIELDS: [string, string[]][] = [
  ["messages", ["messages"]],
  ["prompt-completion", ["prompt", "completion"]],
  ["text", ["text"]],
];

/**
 * Returns the fields of the other formats among `fields`, which data read in `format` ignores.
 * A file of chat records that also keeps each conversation's first prompt ignores "prompt".
 */
export function ignoredFormatFields(format: string, fields: readonly string[]): string[] {
  const read = new Set(FORMAT_FIELDS.find(([name]) => name === format)?.[1] ?? []);
  const others = FORMAT_FIELDS.flatMap(([, names]) => names).filter((name) => !read.has(name));
  return others.filter((name) => fields.includes(name));
}

/** Describes why a file of `count` blank texts has no samples, for its error message. */
export function blankTexts(count: number): string {
  return count === 1 ? "its one text is blank" : `all ${count} texts are blank`;
}
