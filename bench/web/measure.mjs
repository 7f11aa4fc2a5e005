// What the web benchmarks share (bench/web/run.mjs, bench/web/variants.mjs): summary
// statistics, rounding, and the provenance every bench/results file carries.

import { execFileSync } from 'node:child_process';
import os from 'node:os';
import { cargoVersion } from '../../scripts/package-widget.mjs';
import { REPO } from '../../tests/e2e/harness.mjs';

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const quantile = (xs, q) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))];
export const stats = (xs) => ({ median: median(xs), p90: quantile(xs, 0.9), min: Math.min(...xs), max: Math.max(...xs), n: xs.length });
export const round = (x) => Math.round(x * 10) / 10;
export const ratio = (x) => Math.round(x * 1000) / 1000;

/** The command, date, machine, crate version and commit of a result, plus `extra`. */
export function provenance(command, extra = {}) {
  let commit = null;
  try {
    commit = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: REPO }).toString().trim();
  } catch {
    // Not a git checkout: the commit stays unknown.
  }
  return {
    command,
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    machine: `${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.cpus().length} threads available`,
    tessera: cargoVersion(),
    git_commit: commit,
    ...extra,
  };
}
