// The archive bucket: S3-compatible object storage through @aws-sdk/client-s3
// (AWS S3, MinIO, s3proxy, ...). Path-style addressing, so that an endpoint
// on a plain host:port works. Credentials come from the standard AWS
// environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN,
// profiles), as the SDK reads them.
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from "@aws-sdk/client-s3";

export type ArchiveStoreConfig = {
  /** http(s)://host:port; empty for AWS's own endpoint of the region. */
  endpoint: string;
  bucket: string;
  region: string;
  /** Key prefix of every object ("" or ending in "/"). */
  prefix: string;
  /** Explicit credentials (tests); otherwise the SDK's default chain. */
  credentials?: { accessKeyId: string; secretAccessKey: string };
};

export class ArchiveStore {
  readonly bucket: string;
  readonly prefix: string;
  private readonly s3: S3Client;

  constructor(cfg: ArchiveStoreConfig) {
    this.bucket = cfg.bucket;
    this.prefix = cfg.prefix;
    this.s3 = new S3Client({
      region: cfg.region,
      forcePathStyle: true,
      // Integrity is ours (SHA-256 in the manifest); the SDK's default
      // CRC32 trailers are not implemented by every S3-compatible server.
      requestChecksumCalculation: "WHEN_REQUIRED",
      responseChecksumValidation: "WHEN_REQUIRED",
      ...(cfg.endpoint ? { endpoint: cfg.endpoint } : {}),
      ...(cfg.credentials ? { credentials: cfg.credentials } : {}),
    });
  }

  /** Creates the bucket when it does not exist (tests, first start against a fresh server). */
  async ensureBucket(): Promise<void> {
    try {
      await this.s3.send(new HeadBucketCommand({ Bucket: this.bucket }));
    } catch {
      await this.s3.send(new CreateBucketCommand({ Bucket: this.bucket })).catch((err: { name?: string }) => {
        if (err.name !== "BucketAlreadyOwnedByYou" && err.name !== "BucketAlreadyExists") throw err;
      });
    }
  }

  async put(key: string, body: Uint8Array, contentType: string): Promise<void> {
    await this.s3.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: body, ContentType: contentType }));
  }

  /** The object's bytes; null when there is no such object. */
  async get(key: string): Promise<Uint8Array | null> {
    try {
      const res = await this.s3.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      return res.Body ? await res.Body.transformToByteArray() : new Uint8Array();
    } catch (err) {
      if ((err as { name?: string }).name === "NoSuchKey") return null;
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    await this.s3.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
  }

  /** Every object key under `prefix` (listing in pages). */
  async list(prefix: string): Promise<string[]> {
    const out: string[] = [];
    let token: string | undefined;
    do {
      const res = await this.s3.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }));
      // Filesystem-backed servers (s3proxy) list directories as "name/" entries: not objects.
      for (const o of res.Contents ?? []) if (o.Key && !o.Key.endsWith("/")) out.push(o.Key);
      token = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (token);
    return out;
  }

  close(): void {
    this.s3.destroy();
  }
}
