import { HELP_EXAMPLES, HELP_FIELDS, HELP_NOTES } from "../query-help.ts";

export function Help() {
  return (
    <main class="help">
      <h1>Query syntax</h1>
      <p>A short form of the repository's docs/QUERY_SYNTAX.md, which has every detail.</p>
      <ul>
        {HELP_NOTES.map((n) => (
          <li key={n}>{n}</li>
        ))}
      </ul>
      <h2>Examples</h2>
      <div class="table-wrap">
        <table>
          <thead>
            <tr>
              <th scope="col">Query</th>
              <th scope="col">Means</th>
            </tr>
          </thead>
          <tbody>
            {HELP_EXAMPLES.map(([q, m]) => (
              <tr key={q}>
                <td>
                  <code>{q}</code>
                </td>
                <td>{m}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <h2>Fields</h2>
      <div class="table-wrap">
        <table>
          <thead>
            <tr>
              <th scope="col">Field (alias)</th>
              <th scope="col">Value</th>
            </tr>
          </thead>
          <tbody>
            {HELP_FIELDS.map(([f, v]) => (
              <tr key={f}>
                <td>
                  <code>{f}</code>
                </td>
                <td>{v}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </main>
  );
}
