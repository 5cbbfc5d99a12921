/** A JSON value as a nested list; objects and arrays fold (keyboard: the summary toggles). */
export function JsonTree({ value, label }: { value: unknown; label?: string }) {
  if (value !== null && typeof value === "object") {
    const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v] as const) : Object.entries(value);
    const body = (
      <ul class="tree">
        {entries.map(([k, v]) => (
          <li key={k}>
            <JsonTree value={v} label={k} />
          </li>
        ))}
      </ul>
    );
    if (label === undefined) return entries.length ? body : <code>{Array.isArray(value) ? "[]" : "{}"}</code>;
    return (
      <details open>
        <summary>
          <span class="key">{label}</span> <span class="hint">{Array.isArray(value) ? `[${entries.length}]` : `{${entries.length}}`}</span>
        </summary>
        {body}
      </details>
    );
  }
  return (
    <span>
      {label !== undefined && <span class="key">{label}: </span>}
      <code class={`v-${value === null ? "null" : typeof value}`}>{JSON.stringify(value)}</code>
    </span>
  );
}
