import { useState } from "preact/hooks";
import type { VerifyChainResponse } from "../../../gen/auditlog/v1/query_pb.js";
import type { Clients } from "../api.ts";
import { type ShownError, showError } from "../errors.ts";
import { ErrorBox } from "./ErrorBox.tsx";

function seq(text: string): bigint {
  return /^\d+$/.test(text.trim()) ? BigInt(text.trim()) : 0n;
}

export function Integrity({ clients }: { clients: Clients }) {
  const [from, setFrom] = useState("");
  const [to, setTo] = useState("");
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<VerifyChainResponse | null>(null);
  const [error, setError] = useState<ShownError | null>(null);
  const verify = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    setResult(null);
    try {
      setResult(await clients.query.verifyChain({ fromSequence: seq(from), toSequence: seq(to) }));
    } catch (err) {
      setError(showError(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <main>
      <h1>Integrity</h1>
      <p>Recomputes the tenant's hash chain from the stored events: any event changed, removed or reordered breaks it.</p>
      <form class="row wrap" onSubmit={verify}>
        <div class="field">
          <label for="from-seq">From sequence (empty: the first)</label>
          <input id="from-seq" inputMode="numeric" value={from} onInput={(e) => setFrom(e.currentTarget.value)} />
        </div>
        <div class="field">
          <label for="to-seq">To sequence (empty: the last)</label>
          <input id="to-seq" inputMode="numeric" value={to} onInput={(e) => setTo(e.currentTarget.value)} />
        </div>
        <button type="submit" disabled={busy}>
          {busy ? "Verifying…" : "Verify chain"}
        </button>
      </form>
      <ErrorBox error={error} />
      {result && (
        <div class={result.ok ? "verdict ok" : "verdict broken"} role="status" data-testid="verify-result">
          {result.ok ? (
            <p>
              <strong>Chain intact.</strong> {result.checked.toLocaleString()} events checked (sequence {result.fromSequence.toString()} to{" "}
              {result.toSequence.toString()}).
            </p>
          ) : (
            <p>
              <strong>Chain broken</strong> at sequence {result.broken?.sequence.toString()} (event <code>{result.broken?.eventId}</code>):{" "}
              {result.broken?.reason}. Expected hash <code>{result.broken?.expectedHash}</code>, stored{" "}
              <code>{result.broken?.storedHash}</code>.
            </p>
          )}
          <p>
            Head hash: <code class="mono">{result.headHash || "—"}</code>
          </p>
        </div>
      )}
    </main>
  );
}
