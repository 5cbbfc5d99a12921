// A whole number from the environment, within bounds. A bad value is added to
// `errors` (every bad variable is reported at once, by name, before anything
// starts) and the default stands in meanwhile.
export function wholeNumber(
  env: Record<string, string | undefined>,
  name: string,
  dflt: number,
  min: number,
  max: number,
  errors: string[],
): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return dflt;
  const n = /^\d+$/.test(raw) ? Number(raw) : Number.NaN;
  if (!Number.isInteger(n) || n < min || n > max) {
    errors.push(`${name}=${JSON.stringify(raw)}: must be a whole number from ${min} to ${max}`);
    return dflt;
  }
  return n;
}
