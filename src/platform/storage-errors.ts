// Whether an error means PostgreSQL is unreachable or restarting: a failure
// to retry, not a bug. Kept free of transport types so that the store's
// callers and the RPC layer classify errors alike.

const NETWORK_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH", "ENOTFOUND"]);
// SQLSTATE class 08 (connection exception) and 57P01..57P03 (shutdown, crash, cannot connect now).
const SQLSTATE = /^(08...|57P0[123])$/;

export function isStorageUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === "string" && (NETWORK_CODES.has(code) || SQLSTATE.test(code))) return true;
  return /Connection terminated|Client has encountered a connection error|timeout exceeded when trying to connect/i.test(err.message);
}
