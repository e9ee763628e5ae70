-- The master patient index (EMPI). One resident = one active person; every source record
-- (institution + local patient id) links to exactly one person. Created idempotently by
-- streams/identity/master_index/schema.py; docs/identity.md explains each table.
CREATE SCHEMA IF NOT EXISTS empi;

CREATE TABLE IF NOT EXISTS empi.persons (
    person_id    uuid PRIMARY KEY,
    status       text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'merged', 'deceased')),
    merged_into  uuid REFERENCES empi.persons (person_id),
    sex          text,            -- the known sex (GB/T 2261.1 1/2): a link to the other sex is vetoed
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'merged') = (merged_into IS NOT NULL))
);

-- The latest identity fields each institution sent for its patient: candidates are scored on these.
CREATE TABLE IF NOT EXISTS empi.records (
    org_code        text NOT NULL,
    local_id        text NOT NULL,
    person_id       uuid NOT NULL REFERENCES empi.persons (person_id),
    name            text NOT NULL DEFAULT '',
    sex             text NOT NULL DEFAULT '',
    birth_date      text NOT NULL DEFAULT '',
    id_type         text NOT NULL DEFAULT '',
    id_number       text NOT NULL DEFAULT '',
    health_card     text NOT NULL DEFAULT '',
    insurance_card  text NOT NULL DEFAULT '',
    phone           text NOT NULL DEFAULT '',
    address         text NOT NULL DEFAULT '',
    fingerprint     text NOT NULL,            -- hash of the fields above: an unchanged re-send writes nothing
    mapping_version bigint NOT NULL DEFAULT 1, -- raised by a trigger whenever person_id or fingerprint changes:
                                               -- the Redis cache's entries carry it (cache.py)
    link_rule       text NOT NULL,            -- resolution.MatchRule, or operator / review_accept
    link_weight     double precision,         -- Fellegi-Sunter weight (bits) for probabilistic links
    link_detail     jsonb NOT NULL DEFAULT '{}',  -- per-comparison levels and weights, or the identifier
    linked_at       timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_code, local_id)
);
CREATE INDEX IF NOT EXISTS records_person ON empi.records (person_id);
-- An index created before mapping_version existed gets it here. ALTER TABLE locks the stage out of the table
-- even when the column is there, and this file runs at every connect: only when it is missing.
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'empi.records'::regclass
                   AND attname = 'mapping_version' AND NOT attisdropped) THEN
        ALTER TABLE empi.records ADD COLUMN IF NOT EXISTS mapping_version bigint NOT NULL DEFAULT 1;
    END IF;
END $$;

-- Records whose cached person went stale: one row per move (merge, unmerge, review decision, automatic merge),
-- written by the trigger below in the transaction that moved the record. Every resolver turns the rows it has
-- not seen into cache tombstones before it reads Redis (resolver.py), so an entry the move could not reach
-- (Redis down at the time) dies at the next batch once Redis answers. Readers page by transaction id, not by
-- invalidation_id: ids are drawn before commit, so a lower id can become visible after a higher one.
-- Rows older than the cache's TTL (and a margin) are pruned by the resolvers.
CREATE TABLE IF NOT EXISTS empi.cache_invalidations (
    invalidation_id  bigserial PRIMARY KEY,
    org_code         text NOT NULL,
    local_id         text NOT NULL,
    mapping_version  bigint NOT NULL,   -- the record's version after the move: cached entries below it are stale
    txid             xid8 NOT NULL DEFAULT pg_current_xact_id(),
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS cache_invalidations_txid ON empi.cache_invalidations (txid);
CREATE INDEX IF NOT EXISTS cache_invalidations_created ON empi.cache_invalidations (created_at);

-- Every UPDATE that changes a record's person or fingerprint raises its mapping version (one more than
-- before, whatever the statement says: versions never go backwards); a change of person also files the
-- invalidation. In the database, so that no UPDATE can forget it.
CREATE OR REPLACE FUNCTION empi.record_mapping_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.mapping_version := OLD.mapping_version + 1;
    IF NEW.person_id IS DISTINCT FROM OLD.person_id THEN
        INSERT INTO empi.cache_invalidations (org_code, local_id, mapping_version)
        VALUES (NEW.org_code, NEW.local_id, NEW.mapping_version);
    END IF;
    RETURN NEW;
END $$;
DO $$ BEGIN
    -- CREATE TRIGGER locks out writers of the table: only when missing.
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = 'empi.records'::regclass
                   AND tgname = 'records_mapping_version') THEN
        CREATE TRIGGER records_mapping_version BEFORE UPDATE ON empi.records FOR EACH ROW
            WHEN (OLD.person_id IS DISTINCT FROM NEW.person_id OR OLD.fingerprint IS DISTINCT FROM NEW.fingerprint
                  OR OLD.mapping_version IS DISTINCT FROM NEW.mapping_version)
            EXECUTE FUNCTION empi.record_mapping_changed();
    END IF;
END $$;

-- Deterministic identifiers. The primary key is what makes two workers that create the same new
-- resident at once end with one person: the second insert finds the first one's row.
CREATE TABLE IF NOT EXISTS empi.identifiers (
    kind        text NOT NULL,   -- citizen_id, health_card, insurance_card, document
    value       text NOT NULL,   -- normalised (18-character ID, card without separators)
    person_id   uuid NOT NULL REFERENCES empi.persons (person_id),
    first_seen  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, value)
);
CREATE INDEX IF NOT EXISTS identifiers_person ON empi.identifiers (person_id);

-- Blocking keys (streams/identity/blocking.py index_keys): which records a new one is compared with.
CREATE TABLE IF NOT EXISTS empi.block_keys (
    block_key  text NOT NULL,
    org_code   text NOT NULL,
    local_id   text NOT NULL,
    filed_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (block_key, org_code, local_id),
    FOREIGN KEY (org_code, local_id) REFERENCES empi.records (org_code, local_id) ON DELETE CASCADE
);

-- Every record's move between persons (link, merge, unmerge, review): what unmerge restores from.
CREATE TABLE IF NOT EXISTS empi.record_moves (
    move_id         bigserial PRIMARY KEY,
    org_code        text NOT NULL,
    local_id        text NOT NULL,
    from_person_id  uuid,            -- NULL for the first link
    to_person_id    uuid NOT NULL,
    change_id       text NOT NULL,   -- the merge / relink that moved it
    moved_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS record_moves_record ON empi.record_moves (org_code, local_id, move_id);

-- Persons an operator separated: never merged again automatically.
CREATE TABLE IF NOT EXISTS empi.separations (
    person_a  uuid NOT NULL,
    person_b  uuid NOT NULL,
    change_id text NOT NULL,
    PRIMARY KEY (person_a, person_b),
    CHECK (person_a < person_b)
);

-- Sealed health records (注销/封档): one row per person whose death is registered (record_lifecycle.py).
-- persons.status is 'deceased' exactly when the person has a row here; the latest death record wins, and
-- a cancelled or corrected death record re-opens the record only when it is the one that sealed it.
CREATE TABLE IF NOT EXISTS empi.deregistrations (
    person_id         uuid PRIMARY KEY REFERENCES empi.persons (person_id),
    died_at           timestamptz NOT NULL,
    org_code          text NOT NULL,   -- the institution that sent the death record
    record_key        text NOT NULL,   -- the death record's source key (Source.record_key)
    local_patient_id  text,            -- the death record's patient at that institution: an unmerge of that
                                       -- record takes the death with it
    source_event_id   text NOT NULL,
    cause_code        text,            -- ICD-10 underlying cause; NULL when the source (a discharge) lacks it
    change_id         text NOT NULL,   -- the lifecycle change that sealed it (audit_log.change_id)
    sealed_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS deregistrations_source ON empi.deregistrations (org_code, local_patient_id);

-- Possible matches and identifier conflicts for a person to decide.
CREATE TABLE IF NOT EXISTS empi.review_items (
    review_id            bigserial PRIMARY KEY,
    org_code             text NOT NULL,
    local_id             text NOT NULL,
    record_person_id     uuid NOT NULL,   -- where the record went
    candidate_person_id  uuid NOT NULL,   -- whom it may be
    reason               text NOT NULL,   -- resolution.ReviewReason
    weight               double precision,
    detail               jsonb NOT NULL DEFAULT '{}',
    status               text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'accepted', 'rejected')),
    created_at           timestamptz NOT NULL DEFAULT now(),
    decided_at           timestamptz,
    decided_by           text,
    decision_reason      text,
    UNIQUE (org_code, local_id, candidate_person_id, reason)   -- a replayed event raises no second item
);
CREATE INDEX IF NOT EXISTS review_items_open ON empi.review_items (status, review_id);

-- Who did what, when and why: every link, merge, unmerge, review decision and status change.
CREATE TABLE IF NOT EXISTS empi.audit_log (
    audit_id         bigserial PRIMARY KEY,
    at               timestamptz NOT NULL DEFAULT now(),
    actor            text NOT NULL,
    action           text NOT NULL,   -- link, merge, unmerge, review_accept, review_reject, deregister, reinstate, …
    person_id        uuid,
    other_person_id  uuid,
    org_code         text,
    local_id         text,
    change_id        text,
    reason           text NOT NULL DEFAULT '',
    detail           jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS audit_log_person ON empi.audit_log (person_id, audit_id);
CREATE UNIQUE INDEX IF NOT EXISTS audit_log_change ON empi.audit_log (change_id, action, org_code, local_id) NULLS NOT DISTINCT
    WHERE change_id IS NOT NULL;

-- Identity changes waiting to be published (transactional outbox): written in the transaction that
-- makes the change, published to empi.* topics after commit, so a crash between the two loses nothing.
CREATE TABLE IF NOT EXISTS empi.outbox (
    change_id     text PRIMARY KEY,
    event_type    text NOT NULL,     -- empi.person_merged, empi.record_relinked
    person_key    text NOT NULL,     -- message key
    payload       jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz
);
CREATE INDEX IF NOT EXISTS outbox_unpublished ON empi.outbox (created_at) WHERE published_at IS NULL;
