// Where the service's resident memory goes: GET /metrics polled through the
// run (the process figures of src/platform/runtime-metrics.ts), keeping the
// sample with the highest RSS and the phase it fell in. RSS splits into the
// V8 heap the process has reserved (used and not yet collected), memory
// outside the heap that V8 knows of (Buffers: socket data, bulk bodies, COPY
// text) and the rest: Node's own code and native allocations.

/** One sample, in MB. */
export type MemorySample = {
  phase: string;
  rssMb: number;
  heapTotalMb: number;
  heapUsedMb: number;
  externalMb: number;
  /** rss - heapTotal - external: code, stacks, native allocations (pg, HTTP, TLS, zlib). */
  otherMb: number;
};

const MB = 1024 * 1024;

/** The unlabelled value of `name` in a Prometheus text, or undefined. */
function value(text: string, name: string): number | undefined {
  const m = new RegExp(`^${name} (\\S+)$`, "m").exec(text);
  return m ? Number(m[1]) : undefined;
}

/** A sample from a /metrics text, or null when it lacks the process figures (an older service, metrics off). */
export function memoryFromMetrics(text: string, phase: string): MemorySample | null {
  const rss = value(text, "process_resident_memory_bytes");
  const heapTotal = value(text, "nodejs_heap_size_total_bytes");
  const heapUsed = value(text, "nodejs_heap_size_used_bytes");
  const external = value(text, "nodejs_external_memory_bytes");
  if (rss === undefined || heapTotal === undefined || heapUsed === undefined || external === undefined) return null;
  return {
    phase,
    rssMb: rss / MB,
    heapTotalMb: heapTotal / MB,
    heapUsedMb: heapUsed / MB,
    externalMb: external / MB,
    otherMb: (rss - heapTotal - external) / MB,
  };
}

export function formatMemorySample(s: MemorySample): string {
  const mb = (x: number) => x.toFixed(0);
  return (
    `highest sampled RSS ${mb(s.rssMb)} MB (${s.phase}): V8 heap ${mb(s.heapTotalMb)} (${mb(s.heapUsedMb)} used), ` +
    `external ${mb(s.externalMb)}, other ${mb(s.otherMb)}`
  );
}

/**
 * Polls `${url}/metrics` every `everyMs` while running. A failed scrape is
 * counted, not thrown: the bench's figures do not depend on it.
 */
export class MemorySampler {
  phase = "start";
  highest: MemorySample | null = null;
  samples = 0;
  failures = 0;
  private timer: NodeJS.Timeout | null = null;
  private busy = false;
  private readonly url: string;
  private readonly everyMs: number;

  constructor(url: string, everyMs = 1000) {
    this.url = url;
    this.everyMs = everyMs;
  }

  start(): void {
    this.timer = setInterval(() => void this.poll(), this.everyMs);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.poll();
  }

  private async poll(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    const phase = this.phase;
    try {
      const res = await fetch(`${this.url}/metrics`, { signal: AbortSignal.timeout(5000) });
      const s = res.ok ? memoryFromMetrics(await res.text(), phase) : null;
      if (s === null) {
        this.failures++;
        return;
      }
      this.samples++;
      if (!this.highest || s.rssMb > this.highest.rssMb) this.highest = s;
    } catch {
      this.failures++;
    } finally {
      this.busy = false;
    }
  }
}
