// Pure formatting helpers for timestamps and durations shown in the lists.

/** Formats a duration in milliseconds as "1h 2m 3s" (days shown past 24 h); negative or NaN gives "". */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '';
  let seconds = Math.floor(ms / 1000);
  if (seconds === 0) return '0s';
  const days = Math.floor(seconds / 86400);
  seconds -= days * 86400;
  const hours = Math.floor(seconds / 3600);
  seconds -= hours * 3600;
  const minutes = Math.floor(seconds / 60);
  seconds -= minutes * 60;
  const parts: string[] = [];
  if (days > 0) parts.push(`${days}d`);
  if (hours > 0) parts.push(`${hours}h`);
  if (minutes > 0) parts.push(`${minutes}m`);
  // Seconds are noise once a run is measured in days.
  if (seconds > 0 && days === 0) parts.push(`${seconds}s`);
  return parts.join(' ');
}

/** Parses an RFC 3339 timestamp; returns undefined for missing or malformed input. */
export function parseTimestamp(value: unknown): Date | undefined {
  if (typeof value !== 'string' || value === '') return undefined;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? undefined : date;
}

function pad(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

/** Formats a timestamp as local "YYYY-MM-DD HH:MM:SS"; missing or malformed gives "". */
export function formatTimestamp(value: unknown): string {
  const date = parseTimestamp(value);
  if (!date) return '';
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`
  );
}

/**
 * Duration of a run: finished − started, or now − started while it is still running.
 * A run that never started has no duration ("").
 */
export function runDuration(startedAt: unknown, finishedAt: unknown, now: Date): string {
  const started = parseTimestamp(startedAt);
  if (!started) return '';
  const finished = parseTimestamp(finishedAt) ?? now;
  return formatDuration(finished.getTime() - started.getTime());
}
