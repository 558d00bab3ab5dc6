/** One host check, shared by `preflight`, `preflight --image` and the preflight phase. */
export interface CheckResult {
  name: string;
  ok: boolean;
  /** A warning is shown but does not fail the run. */
  severity: 'error' | 'warning';
  /** What was found, and when not ok, what is wrong and what was expected. */
  detail: string;
}
