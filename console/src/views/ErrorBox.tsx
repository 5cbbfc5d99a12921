import type { ShownError } from "../errors.ts";

/** The service's own message and field violations, announced to screen readers. */
export function ErrorBox({ error }: { error: ShownError | null }) {
  if (!error) return null;
  return (
    <div class="error" role="alert">
      <strong>{error.code}</strong>: {error.message}
      {error.violations.length > 0 && (
        <ul class="violations">
          {error.violations.map((v) => (
            <li key={v.field + v.description}>
              <code>{v.field}</code>: {v.description}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}
