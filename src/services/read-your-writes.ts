// `min_position` of SearchEvents and ExportEvents: a producer that just got
// position N acknowledged can ask for a read that includes it, although the
// search index follows the commits asynchronously.
import { Code, ConnectError } from "@connectrpc/connect";
import type { SearchBackend } from "../search/backend.ts";

/** How long a read waits for `min_position` to become searchable. */
export const MIN_POSITION_WAIT_MS = 10_000;

/** Waits (bounded, and no longer than `signal` allows) for `position` to be searchable; DEADLINE_EXCEEDED otherwise. */
export async function awaitPosition(backend: SearchBackend, tenantId: string, position: bigint, signal?: AbortSignal): Promise<void> {
  if (position === 0n) return;
  if (!(await backend.waitForPosition(tenantId, position, MIN_POSITION_WAIT_MS, signal))) {
    throw new ConnectError(
      `min_position ${position} did not become searchable within ${MIN_POSITION_WAIT_MS / 1000} s`,
      Code.DeadlineExceeded,
    );
  }
}
