// Downloads an export through the browser with the credential in a header:
// fetch, then a Blob URL, so the key never appears in a URL or in history.
import { authHeaders, type Session } from "./session.ts";

export class ExportError extends Error {}

export async function downloadExport(
  session: Session,
  params: URLSearchParams,
  signal?: AbortSignal,
): Promise<{ filename: string; bytes: number }> {
  const res = await fetch(`/v1/export?${params}`, { headers: authHeaders(session), signal });
  if (!res.ok) {
    let message = `${res.status} ${res.statusText}`;
    try {
      const body = (await res.json()) as { code?: string; message?: string };
      if (body.message) message = `${(body.code ?? "").toUpperCase()}: ${body.message}`;
    } catch {
      // Not JSON: the status line says enough.
    }
    throw new ExportError(message);
  }
  const blob = await res.blob();
  const disposition = res.headers.get("content-disposition") ?? "";
  const filename = /filename="?([^";]+)"?/.exec(disposition)?.[1] ?? `auditlog-export.${params.get("format") ?? "txt"}`;
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
  return { filename, bytes: blob.size };
}
