// Typed reads of config.json fields. Each family parses its own config with these, so a missing
// or mistyped field fails with the file's key name and the family that needs it.

/** A config.json object as parsed. */
export type RawConfig = Record<string, unknown>;

function describe(value: unknown): string {
  return value === undefined ? "missing" : JSON.stringify(value);
}

/** Returns the positive whole number stored under the first present key, or throws. */
export function requireInt(raw: RawConfig, family: string, ...keys: string[]): number {
  const value = optionalInt(raw, family, keys);
  if (value === undefined) {
    throw new Error(
      `${family} config: "${keys.join('" or "')}" is missing; ` +
        `config.json must give it as a positive whole number`,
    );
  }
  return value;
}

/** Returns the positive whole number under the first present key, or undefined when absent. */
export function optionalInt(raw: RawConfig, family: string, keys: string[]): number | undefined {
  for (const key of keys) {
    const value = raw[key];
    if (value === undefined || value === null) continue;
    if (typeof value !== "number" || !Number.isInteger(value) || value <= 0) {
      throw new Error(
        `${family} config: "${key}" must be a positive whole number, got ${describe(value)}`,
      );
    }
    return value;
  }
  return undefined;
}

/** Returns the finite number under `key`, or `fallback` when the key is absent or null. */
export function numberOr(raw: RawConfig, family: string, key: string, fallback: number): number {
  const value = raw[key];
  if (value === undefined || value === null) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value)) {
    throw new Error(`${family} config: "${key}" must be a number, got ${describe(value)}`);
  }
  return value;
}

/** Returns the boolean under `key`, or `fallback` when the key is absent or null. */
export function boolOr(raw: RawConfig, family: string, key: string, fallback: boolean): boolean {
  const value = raw[key];
  if (value === undefined || value === null) return fallback;
  if (typeof value !== "boolean") {
    throw new Error(`${family} config: "${key}" must be true or false, got ${describe(value)}`);
  }
  return value;
}

/** Returns the string under `key`, or `fallback` when the key is absent or null. */
export function stringOr(raw: RawConfig, family: string, key: string, fallback: string): string {
  const value = raw[key];
  if (value === undefined || value === null) return fallback;
  if (typeof value !== "string") {
    throw new Error(`${family} config: "${key}" must be a string, got ${describe(value)}`);
  }
  return value;
}

/** Returns the object under `key`, or null when the key is absent or null. */
export function objectOrNull(raw: RawConfig, family: string, key: string): RawConfig | null {
  const value = raw[key];
  if (value === undefined || value === null) return null;
  if (typeof value !== "object" || Array.isArray(value)) {
    throw new Error(`${family} config: "${key}" must be an object, got ${describe(value)}`);
  }
  return value as RawConfig;
}

/** Throws unless `numerator` is a multiple of `denominator`, naming both config keys. */
export function requireDivisible(
  family: string,
  numerator: [string, number],
  denominator: [string, number],
): void {
  if (numerator[1] % denominator[1] !== 0) {
    throw new Error(
      `${family} config: ${numerator[0]} (${numerator[1]}) must be a multiple of ` +
        `${denominator[0]} (${denominator[1]})`,
    );
  }
}
