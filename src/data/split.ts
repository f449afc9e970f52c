// Train/validation split by group: every sample of a group (a SQuAD article, a JSONL line or a
// value of a group field) lands on the same side. Validation then never scores a paragraph that
// training used for a sibling question.
import { createRandom, shuffleInPlace } from "./random.js";

export interface SplitOptions {
  /** Share of the samples to put in validation, in (0, 1). */
  validationFraction: number;
  seed: number;
}

/**
 * Splits items into train and validation by their `group`. Groups are shuffled with the seed and
 * moved to validation until it contains at least the requested share of the items (and at least
 * one group); each side keeps the original order. Throws when there are fewer than two groups.
 */
export function splitByGroup<T extends { group: string }>(
  items: readonly T[],
  options: SplitOptions,
): { train: T[]; validation: T[] } {
  const { validationFraction, seed } = options;
  if (!(validationFraction > 0 && validationFraction < 1)) {
    throw new Error(
      `splitByGroup: validationFraction must be between 0 and 1 (exclusive), got ` +
        `${validationFraction}; on the command line it is --val-fraction`,
    );
  }

  const sizes = new Map<string, number>();
  for (const item of items) sizes.set(item.group, (sizes.get(item.group) ?? 0) + 1);
  if (sizes.size < 2) {
    throw new Error(
      `splitByGroup: ${items.length} samples in ${sizes.size} group(s); a split that keeps groups ` +
        `apart needs at least 2. Give a separate validation file instead (--val-data on the ` +
        `command line, or valid.jsonl beside train.jsonl in a data folder)`,
    );
  }

  const groups = shuffleInPlace([...sizes.keys()], createRandom(seed));
  const target = validationFraction * items.length;
  const validationGroups = new Set<string>();
  let count = 0;
  for (const group of groups) {
    if (count >= target && validationGroups.size > 0) break;
    // Never take the last group: training must keep at least one.
    if (validationGroups.size === groups.length - 1) break;
    validationGroups.add(group);
    count += sizes.get(group) ?? 0;
  }

  const train: T[] = [];
  const validation: T[] = [];
  for (const item of items) (validationGroups.has(item.group) ? validation : train).push(item);
  return { train, validation };
}
