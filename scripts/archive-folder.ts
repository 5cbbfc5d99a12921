// A folder of archive objects and their manifests as downloaded from the
// bucket (e.g. `aws s3 cp --recursive s3://<bucket>/<prefix><tenant>/ dir/`),
// as the input of verifyArchiveFolder (src/domain/archive-folder-verification.ts):
// every `<object>.manifest.json` under the folder, at any depth, with the
// object beside it read (and gunzipped) only when the verification asks for
// it, so that one object at a time is in memory.
import { readdirSync, readFileSync } from "node:fs";
import { join, relative, sep } from "node:path";
import { gunzipSync } from "node:zlib";
import type { ArchiveFolderInput, ArchiveObjectFile, ManifestFile } from "../src/domain/archive-folder-verification.ts";

export const MANIFEST_SUFFIX = ".manifest.json";
/** What the retention job names its objects (docs/HASH_CHAIN.md, "Archives"). */
export const OBJECT_SUFFIX = ".ndjson.gz";

/** Every file under `dir`, as paths relative to it with "/" separators, sorted. */
function files(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile())
    .map((d) => relative(dir, join(d.parentPath, d.name)).split(sep).join("/"))
    .sort();
}

/** The folder's manifests and stray objects, and a reader for the object beside a manifest. Throws when `dir` cannot be listed. */
export function readArchiveFolder(dir: string): Pick<ArchiveFolderInput, "manifests" | "strayObjects" | "readObject"> {
  const all = files(dir);
  const present = new Set(all);
  const manifests: ManifestFile[] = all
    .filter((f) => f.endsWith(MANIFEST_SUFFIX))
    .map((name) => ({ name, text: readFileSync(join(dir, name), "utf8") }));
  const strayObjects = all.filter((f) => f.endsWith(OBJECT_SUFFIX) && !present.has(f + MANIFEST_SUFFIX));
  const readObject = (manifestName: string): ArchiveObjectFile | null => {
    const name = manifestName.slice(0, -MANIFEST_SUFFIX.length);
    if (!present.has(name)) return null;
    const stored = readFileSync(join(dir, name));
    try {
      return { stored, ndjson: gunzipSync(stored) };
    } catch (err) {
      return { stored, unreadable: `not gzip: ${(err as Error).message}` };
    }
  };
  return { manifests, strayObjects, readObject };
}
