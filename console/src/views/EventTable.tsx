import type { StoredEvent } from "../../../gen/auditlog/v1/event_pb.js";
import { formatTime, outcomeName, severityName } from "../event-format.ts";
import { navigate, onLinkClick } from "../router.ts";

/** Events as rows; each row's id is a link to its detail (keyboard: Tab, Enter). */
export function EventTable({ events, caption, testId }: { events: StoredEvent[]; caption: string; testId: string }) {
  return (
    <div class="table-wrap">
      <table data-testid={testId}>
        <caption>{caption}</caption>
        <thead>
          <tr>
            <th scope="col">Occurred</th>
            <th scope="col">Action</th>
            <th scope="col">Actor</th>
            <th scope="col">Target</th>
            <th scope="col">Outcome</th>
            <th scope="col">Severity</th>
            <th scope="col">Message</th>
          </tr>
        </thead>
        <tbody>
          {events.map((se) => {
            const e = se.event!;
            const href = `/events/${encodeURIComponent(e.id)}`;
            return (
              <tr key={e.id} onClick={(ev) => (ev.target as HTMLElement).tagName !== "A" && navigate(href)}>
                <td class="nowrap">
                  <a href={href} onClick={(ev) => onLinkClick(ev, href)}>
                    {formatTime(e.occurredAt)}
                  </a>
                </td>
                <td>{e.action}</td>
                <td>{e.actor?.name || e.actor?.id}</td>
                <td>{e.target ? `${e.target.type}${e.target.id ? `:${e.target.id}` : ""}` : ""}</td>
                <td>{outcomeName(e.outcome)}</td>
                <td class={`sev-${severityName(e.severity).toLowerCase()}`}>{severityName(e.severity)}</td>
                <td class="msg">{e.message}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}
