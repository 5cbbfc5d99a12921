// QueryService's checkpoint RPCs (ListCheckpoints, CreateCheckpoint) and the
// periodic signing of moved chain heads (docs/HASH_CHAIN.md, "Signed
// checkpoints").
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import type { Validator } from "@bufbuild/protovalidate";
import {
  type Checkpoint,
  CheckpointSchema,
  type CreateCheckpointRequest,
  type CreateCheckpointResponse,
  CreateCheckpointResponseSchema,
  type ListCheckpointsRequest,
  type ListCheckpointsResponse,
  ListCheckpointsRequestSchema,
  ListCheckpointsResponseSchema,
} from "../../gen/auditlog/v1/query_pb.js";
import { checkpointDocument, type SignedCheckpoint, signCheckpoint } from "../domain/checkpoint.ts";
import type { SigningKey } from "../domain/signing.ts";
import { microsFromDate } from "../domain/timestamp.ts";
import type { Logger } from "../platform/log.ts";
import { Periodic } from "../platform/periodic.ts";
import type { CheckpointStore, HeadSigner } from "../store/checkpoint-store.ts";
import { tenantOf, validateRequest } from "./request-context.ts";

export type CheckpointDeps = {
  store: CheckpointStore;
  /** null: no signing key configured; the RPCs answer FAILED_PRECONDITION. */
  key: SigningKey | null;
};

const DEFAULT_PAGE_SIZE = 100;

export function headSigner(key: SigningKey, now: () => Date = () => new Date()): HeadSigner {
  return (head) => signCheckpoint(key, { ...head, createdAt: microsFromDate(now()) });
}

export function checkpointMessage(c: SignedCheckpoint): Checkpoint {
  return create(CheckpointSchema, {
    tenantId: c.tenantId,
    sequence: c.sequence,
    hash: c.hash,
    createdAt: timestampFromDate(new Date(Number(c.createdAt / 1000n))),
    keyId: c.keyId,
    signature: c.signature,
    document: checkpointDocument(c),
  });
}

function requireKey(key: SigningKey | null): SigningKey {
  if (!key) throw new ConnectError("no checkpoint signing key is configured (AUDITLOG_CHECKPOINT_KEY_FILE)", Code.FailedPrecondition);
  return key;
}

function requireStore(store: CheckpointStore | undefined): CheckpointStore {
  if (!store) throw new ConnectError("checkpoints are not available on this server", Code.FailedPrecondition);
  return store;
}

/**
 * The RPCs. Listing needs only the store (checkpoints signed before the key
 * was removed stay listed); signing needs the key too. Without `deps` (no
 * store wired, e.g. in-memory tests) both answer FAILED_PRECONDITION.
 */
export function checkpointHandlers(deps: CheckpointDeps | undefined, validator: Validator) {
  const store = deps?.store;
  const key = deps?.key ?? null;
  return {
    async listCheckpoints(req: ListCheckpointsRequest, ctx: HandlerContext): Promise<ListCheckpointsResponse> {
      const tenantId = tenantOf(ctx);
      validateRequest(validator, ListCheckpointsRequestSchema, req);
      const list = await requireStore(store).list(tenantId, req.pageSize || DEFAULT_PAGE_SIZE, req.beforeSequence, ctx.signal);
      return create(ListCheckpointsResponseSchema, { checkpoints: list.map(checkpointMessage) });
    },

    async createCheckpoint(_req: CreateCheckpointRequest, ctx: HandlerContext): Promise<CreateCheckpointResponse> {
      const tenantId = tenantOf(ctx);
      const k = requireKey(key);
      const c = await requireStore(store).checkpointHead(tenantId, k.keyId, headSigner(k));
      if (!c) throw new ConnectError(`tenant "${tenantId}" has no event yet: there is no chain head to sign`, Code.FailedPrecondition);
      return create(CreateCheckpointResponseSchema, { checkpoint: checkpointMessage(c) });
    },
  };
}

/** Signs the moved heads every `intervalMs` (and once at start); one replica at a time (the store's advisory lock). */
export class CheckpointSchedule {
  private periodic: Periodic | null = null;
  private readonly store: CheckpointStore;
  private readonly key: SigningKey;
  private readonly log: Logger;

  constructor(store: CheckpointStore, key: SigningKey, log: Logger) {
    this.store = store;
    this.key = key;
    this.log = log;
  }

  /** One run; resolves with how many heads were signed (null: another replica is running). Never rejects. */
  async runOnce(): Promise<number | null> {
    try {
      const n = await this.store.checkpointMovedHeads(this.key.keyId, headSigner(this.key));
      if (n) this.log.info("checkpoints signed", { tenants: n, keyId: this.key.keyId });
      return n;
    } catch (err) {
      this.log.error("periodic checkpoint failed", { err: (err as Error).message });
      return null;
    }
  }

  start(intervalMs: number): void {
    this.periodic ??= new Periodic(
      () => this.runOnce(),
      (err) => this.log.error("periodic checkpoint failed", { err }),
    );
    this.periodic.start(intervalMs, { immediately: true });
  }

  async stop(): Promise<void> {
    await this.periodic?.stop();
  }
}
