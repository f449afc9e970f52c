// Shows a checked value in an error message so that its type is visible: a string keeps its
// quotes ("8" is not 8), and numbers keep NaN and Infinity, which JSON.stringify turns into null.

/** Formats `value` for a validation message: numbers as written, everything else as JSON. */
export function formatValue(value: unknown): string {
  if (typeof value === "number" || typeof value === "bigint") return String(value);
  if (value === undefined) return "undefined";
  if (typeof value === "function" || typeof value === "symbol") return String(value);
  try {
    return JSON.stringify(value);
  } catch {
    return String(value);
  }
}
