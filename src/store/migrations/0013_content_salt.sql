-- Salted content hashes (docs/HASH_CHAIN.md, "Salted content hashes"):
-- every event written from now on hashes its content with a random salt of
-- its own, kept here so that the content hash can be recomputed; an erasure
-- sets it to NULL together with the personal content, and the kept content
-- hash then confirms no guess of what the event held. NULL also for the
-- events written before (content hash version 1, without salt).
--
-- A nullable column without default: no table rewrite, no scan.
ALTER TABLE events ADD COLUMN salt text;

-- event_ids.content_hash (the idempotency check) holds from now on the
-- digest of the content without salt (the same value as a version 1
-- content hash, so rows written before keep their meaning), and '' for an
-- erased event: its content cannot be compared any more.
COMMENT ON COLUMN event_ids.content_hash IS
  'SHA-256 of the canonical content without salt, compared with a retry; empty once the event is erased';
