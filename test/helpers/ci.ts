// Under CI (CI=true) every tier must run: a privileged or tool-dependent test that would skip
// fails the run instead, so a green CI never hides a tier that did not execute.

/** `reason` unchanged outside CI; under CI a reason to skip throws, failing the test file. */
export function skipUnlessCi<T extends string | false | undefined>(reason: T): T {
  if (reason && process.env.CI === 'true') throw new Error(`this tier must run under CI=true but would skip: ${reason}`);
  return reason;
}
