// grpc.health.v1.Health (https://github.com/grpc/grpc/blob/master/doc/health-checking.md)
// over a small in-memory state. The overall server status is the service "".
// A service that is NOT_SERVING can carry a reason, and conditions that do
// not stop any service can be noted as warnings: gRPC health has no place
// for either, GET /healthz shows both.

import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import type { UniversalHandlerOptions } from "@connectrpc/connect/protocol";
import {
  Health,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus,
  type HealthCheckResponse,
} from "../../gen/health/v1/health_pb.js";

export type ServingStatus = "SERVING" | "NOT_SERVING";
/** What Watch reports: a known status, or SERVICE_UNKNOWN for names never set. */
export type WatchStatus = ServingStatus | "SERVICE_UNKNOWN";

export class HealthState {
  #statuses = new Map<string, ServingStatus>();
  #reasons = new Map<string, string>();
  #warnings = new Map<string, string>();
  #shutdown = false;
  /** Bumped on every change, so a watcher can tell it missed one. */
  #version = 0;
  #listeners = new Set<() => void>();

  /**
   * `initial` defaults to `{ "": "NOT_SERVING" }`: the process reports
   * SERVING only once its dependencies are ready and it says so.
   */
  constructor(initial: Record<string, ServingStatus> = { "": "NOT_SERVING" }) {
    for (const [service, status] of Object.entries(initial)) this.#statuses.set(service, status);
  }

  /**
   * Sets the status of `service` ("" = whole server), with why when it is
   * NOT_SERVING (a SERVING status drops the reason). Ignored after shutdown().
   */
  set(service: string, status: ServingStatus, reason?: string): void {
    if (this.#shutdown) return;
    if (status !== "SERVING" && status !== "NOT_SERVING") throw new Error(`invalid serving status ${String(status)}`);
    if (status === "NOT_SERVING" && reason) this.#reasons.set(service, reason);
    else this.#reasons.delete(service);
    if (this.#statuses.get(service) === status) return;
    this.#statuses.set(service, status);
    this.#notify();
  }

  /** undefined when the service was never set. */
  get(service: string): ServingStatus | undefined {
    return this.#statuses.get(service);
  }

  /** Why `service` is NOT_SERVING, when that was said. */
  reason(service: string): string | undefined {
    return this.#reasons.get(service);
  }

  /** Notes (text) or clears (null) a condition that stops no service but an operator should see. */
  warn(key: string, text: string | null): void {
    if (text === null) this.#warnings.delete(key);
    else this.#warnings.set(key, text);
  }

  /** The current warnings, by key. */
  warnings(): Map<string, string> {
    return new Map(this.#warnings);
  }

  /** Snapshot of all statuses. */
  all(): Map<string, ServingStatus> {
    return new Map(this.#statuses);
  }

  /**
   * Every service goes NOT_SERVING for good, and Watch streams send that and
   * end, so they do not hold up a graceful shutdown.
   */
  shutdown(): void {
    if (this.#shutdown) return;
    for (const service of this.#statuses.keys()) this.#statuses.set(service, "NOT_SERVING");
    this.#shutdown = true;
    this.#notify();
  }

  /**
   * Yields the current status of `service`, then every change, until the
   * signal aborts or shutdown() was called (after yielding the final status).
   * Changes made synchronously one after another may be coalesced.
   */
  async *watch(service: string, signal: AbortSignal): AsyncGenerator<WatchStatus> {
    let last: WatchStatus | undefined;
    for (;;) {
      if (signal.aborted) return;
      const seen = this.#version;
      const current = this.#statuses.get(service) ?? "SERVICE_UNKNOWN";
      if (current !== last) {
        last = current;
        yield current;
      }
      if (this.#shutdown || signal.aborted) return;
      if (this.#version === seen) await this.#nextChange(signal);
    }
  }

  #nextChange(signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        signal.removeEventListener("abort", done);
        this.#listeners.delete(done);
        resolve();
      };
      signal.addEventListener("abort", done);
      this.#listeners.add(done);
    });
  }

  #notify(): void {
    this.#version++;
    for (const listener of [...this.#listeners]) listener();
  }
}

const toProto: Record<WatchStatus, HealthCheckResponse_ServingStatus> = {
  SERVING: HealthCheckResponse_ServingStatus.SERVING,
  NOT_SERVING: HealthCheckResponse_ServingStatus.NOT_SERVING,
  SERVICE_UNKNOWN: HealthCheckResponse_ServingStatus.SERVICE_UNKNOWN,
};

function response(status: WatchStatus): HealthCheckResponse {
  return create(HealthCheckResponseSchema, { status: toProto[status] });
}

/**
 * Registers grpc.health.v1.Health (Check, Watch, List). `options` overrides
 * router options for this service (startHttpServer uses it to keep
 * application interceptors away from health checks).
 */
export function registerHealth(router: ConnectRouter, health: HealthState, options?: Partial<UniversalHandlerOptions>): void {
  router.service(
    Health,
    {
      check(req) {
        const status = health.get(req.service);
        if (status === undefined) {
          throw new ConnectError(`unknown service ${JSON.stringify(req.service)}`, Code.NotFound);
        }
        return response(status);
      },
      async *watch(req, ctx) {
        for await (const status of health.watch(req.service, ctx.signal)) {
          yield response(status);
        }
      },
      list() {
        const statuses: Record<string, HealthCheckResponse> = {};
        for (const [service, status] of health.all()) statuses[service] = response(status);
        return { statuses };
      },
    },
    options,
  );
}
