// A one-line progress bar for downloads on stderr: bytes, percentage, rate and ETA.
import type { DownloadProgress } from "./hub-http.js";

const UNITS = ["B", "kB", "MB", "GB", "TB"];

/** Formats a byte count with decimal units (1 MB = 10^6 bytes, as the Hub's pages show). */
export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < UNITS.length - 1) {
    value /= 1000;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${UNITS[unit]}`;
}

function formatSeconds(seconds: number): string {
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

/** Formats one progress line, e.g. "model.safetensors 12.0 MB / 48.0 MB 25% 6.0 MB/s ETA 6s". */
export function formatProgress(p: DownloadProgress): string {
  const rate = `${formatBytes(p.bytesPerSecond)}/s`;
  if (p.totalBytes === null || p.totalBytes === 0) {
    return `${p.file} ${formatBytes(p.receivedBytes)} ${rate}`;
  }
  const percent = Math.floor((100 * p.receivedBytes) / p.totalBytes);
  const remaining = Math.max(p.totalBytes - p.receivedBytes, 0);
  const eta = p.done ? "done" : `ETA ${formatSeconds(remaining / Math.max(p.bytesPerSecond, 1))}`;
  return (
    `${p.file} ${formatBytes(p.receivedBytes)} / ${formatBytes(p.totalBytes)} ` +
    `${percent}% ${rate} ${eta}`
  );
}

/** Returns a progress callback that redraws one stderr line at most 10 times a second. */
export function stderrProgressBar(): (p: DownloadProgress) => void {
  let lastDraw = 0;
  return (p) => {
    const now = Date.now();
    if (!p.done && now - lastDraw < 100) return;
    lastDraw = now;
    const width = process.stderr.columns ?? 80;
    const line = formatProgress(p).slice(0, width - 1);
    process.stderr.write(`\r${line.padEnd(width - 1)}${p.done ? "\n" : ""}`);
  };
}
