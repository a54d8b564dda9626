/**
 * Maintenance windows for automatic updates, in local time:
 *   "Sun 02:00-04:00", "Mon-Fri 01:30-03:00", "Sat,Sun 22:00-02:00" (wraps midnight), "03:00-05:00" (daily).
 * A window that wraps midnight belongs to the day it starts on.
 */
export interface MaintenanceWindow {
  text: string;
  /** Days the window starts on, 0 = Sunday. */
  days: Set<number>;
  /** Minutes after midnight. */
  start: number;
  end: number;
}

const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];

export function parseWindow(text: string): MaintenanceWindow | undefined {
  const m = /^\s*(?:([A-Za-z,\-\s]+?)\s+)?(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$/.exec(text);
  if (!m) return undefined;
  const [, dayText, h1, m1, h2, m2] = m;
  const start = Number(h1) * 60 + Number(m1);
  const end = Number(h2) * 60 + Number(m2);
  if (Number(h1) > 23 || Number(h2) > 24 || Number(m1) > 59 || Number(m2) > 59 || end > 1440 || start === end) return undefined;
  const days = new Set<number>();
  if (!dayText || /^daily$/i.test(dayText.trim())) {
    for (let d = 0; d < 7; d++) days.add(d);
  } else {
    for (const part of dayText.split(',')) {
      const [a, b] = part
        .trim()
        .toLowerCase()
        .split('-')
        .map((s) => s.trim().slice(0, 3));
      const from = DAYS.indexOf(a ?? '');
      const to = b === undefined ? from : DAYS.indexOf(b);
      if (from < 0 || to < 0) return undefined;
      for (let d = from; ; d = (d + 1) % 7) {
        days.add(d);
        if (d === to) break;
      }
    }
  }
  return { text: text.trim(), days, start, end };
}

/** Is `at` (local time) inside the window? */
export function inWindow(w: MaintenanceWindow, at: Date): boolean {
  const minute = at.getHours() * 60 + at.getMinutes();
  const day = at.getDay();
  if (w.start < w.end) return w.days.has(day) && minute >= w.start && minute < w.end;
  // Wraps midnight: the evening part on a listed day, or the morning part the day after one.
  if (minute >= w.start) return w.days.has(day);
  return minute < w.end && w.days.has((day + 6) % 7);
}

/** The next time the window opens at or after `from` (for STATUS lines). */
export function nextWindowStart(w: MaintenanceWindow, from: Date): Date {
  if (inWindow(w, from)) return from;
  for (let i = 0; i <= 7 * 24 * 60; i += 1) {
    const t = new Date(from.getTime() + i * 60_000);
    if (t.getHours() * 60 + t.getMinutes() === w.start && w.days.has(t.getDay())) {
      t.setSeconds(0, 0);
      return t;
    }
  }
  return from;
}
