-- 0001: the ledger — rule files, settlements and reversals (partitioned by
-- month of the settlement date), the shipper's cursors, and the function
-- that makes a month's partitions. Applied by medsettle-ledger migrate in
-- one transaction (ledger/migrations.h); never edit after it shipped: add
-- 0002_….sql instead. The schema `ledger` and ledger.schema_migrations are
-- made by the migrator itself.

-- Format checks are written as length(x) = N AND x ~ '^[0-9a-f]*$' rather
-- than x ~ '^[0-9a-f]{N}$': PostgreSQL's regex engine spends ~7 µs a row on
-- a bounded repetition and ~0.4 µs on this form, and Ship checks six a row.

-- ---- rule files -------------------------------------------------------------

CREATE TABLE ledger.rule_files (
  sha256 text PRIMARY KEY CONSTRAINT rule_files_sha256_format CHECK (length(sha256) = 64 AND sha256 ~ '^[0-9a-f]*$'),
  kind text NOT NULL CONSTRAINT rule_files_kind CHECK (kind IN ('policy', 'catalog')),
  name text NOT NULL,
  content bytea NOT NULL,
  first_seen timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT rule_files_sha256_matches_content CHECK (sha256 = encode(sha256(content), 'hex'))
);
COMMENT ON TABLE ledger.rule_files IS
  'Every policy YAML file and catalog CSV a settlement was computed with, once per SHA-256 of its bytes, so a settlement of years ago is recomputed with the exact rules. Rows are never updated or deleted.';
COMMENT ON COLUMN ledger.rule_files.sha256 IS 'lowercase hex SHA-256 of content; settlements.policy_sha256 / catalog_sha256 name it';
COMMENT ON COLUMN ledger.rule_files.kind IS 'policy (a region-year YAML file, engine/policies/) or catalog (the catalog CSV)';
COMMENT ON COLUMN ledger.rule_files.name IS 'the policy id (e.g. quzhou-2025) or the catalog file name';
COMMENT ON COLUMN ledger.rule_files.content IS 'the file''s bytes exactly as the gateway loaded them';
COMMENT ON COLUMN ledger.rule_files.first_seen IS 'when the shipper (or put-rules) first stored it';

-- ---- settlements ------------------------------------------------------------

CREATE TABLE ledger.settlements (
  settlement_id text NOT NULL
    CONSTRAINT settlements_settlement_id_format CHECK (
      length(settlement_id) = 32 AND settlement_id ~ '^[0-9a-f][0-9a-f]-[0-9a-f]*-[0-9a-f]*$' AND
      substr(settlement_id, 16, 1) = '-'),
  settlement_date date NOT NULL,
  settled_at timestamptz NOT NULL,
  year integer NOT NULL CONSTRAINT settlements_year_range CHECK (year BETWEEN 1900 AND 2199),
  institution_id text NOT NULL CONSTRAINT settlements_institution_id_set CHECK (institution_id <> ''),
  request_id text NOT NULL CONSTRAINT settlements_request_id_set CHECK (request_id <> ''),
  person_key text NOT NULL CONSTRAINT settlements_person_key_format CHECK (length(person_key) = 64 AND person_key ~ '^[0-9a-f]*$'),
  credential_kind text NOT NULL,
  presenter_key text CONSTRAINT settlements_presenter_key_format CHECK (length(presenter_key) = 64 AND presenter_key ~ '^[0-9a-f]*$'),
  certificate_fingerprint text,
  visit_type text NOT NULL,
  snapshot_version text NOT NULL,
  policy_id text NOT NULL,
  policy_sha256 text NOT NULL CONSTRAINT settlements_policy_sha256_format CHECK (length(policy_sha256) = 64 AND policy_sha256 ~ '^[0-9a-f]*$'),
  catalog_sha256 text NOT NULL CONSTRAINT settlements_catalog_sha256_format CHECK (length(catalog_sha256) = 64 AND catalog_sha256 ~ '^[0-9a-f]*$'),
  total_cents bigint NOT NULL,
  out_of_scope_cents bigint NOT NULL,
  over_limit_cents bigint NOT NULL,
  pre_self_pay_cents bigint NOT NULL,
  in_scope_cents bigint NOT NULL,
  deductible_cents bigint NOT NULL,
  base_fund_cents bigint NOT NULL,
  critical_illness_cents bigint NOT NULL,
  supplementary_cents bigint NOT NULL,
  patient_cents bigint NOT NULL,
  delta bytea NOT NULL,
  record bytea NOT NULL,
  record_json json NOT NULL,
  journal_tag text NOT NULL CONSTRAINT settlements_journal_tag_format CHECK (length(journal_tag) = 2 AND journal_tag ~ '^[0-9a-f]*$'),
  journal_id text NOT NULL CONSTRAINT settlements_journal_id_format CHECK (journal_id ~ '^[0-9]+-[0-9]+$'),
  shipped_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (settlement_id, settlement_date),
  CONSTRAINT settlements_amounts_not_negative CHECK (
    total_cents >= 0 AND out_of_scope_cents >= 0 AND over_limit_cents >= 0 AND
    pre_self_pay_cents >= 0 AND in_scope_cents >= 0 AND deductible_cents >= 0 AND
    base_fund_cents >= 0 AND critical_illness_cents >= 0 AND supplementary_cents >= 0 AND
    patient_cents >= 0),
  CONSTRAINT settlements_payers_add_up CHECK (
    base_fund_cents + critical_illness_cents + supplementary_cents + patient_cents = total_cents),
  CONSTRAINT settlements_classes_add_up CHECK (
    out_of_scope_cents + over_limit_cents + pre_self_pay_cents + in_scope_cents = total_cents),
  -- A person's settlements share the person's hash tag: the id begins with
  -- it and it is journaled in that tag's journal.
  CONSTRAINT settlements_tag_consistent CHECK (
    left(settlement_id, 2) = journal_tag AND left(person_key, 2) = journal_tag)
) PARTITION BY RANGE (settlement_date);
ALTER TABLE ledger.settlements ALTER COLUMN record SET COMPRESSION lz4;
ALTER TABLE ledger.settlements ALTER COLUMN record_json SET COMPRESSION lz4;
-- The primary key's index (settlement_id first) also serves a look-up by
-- settlement id alone (one probe per partition).
CREATE INDEX settlements_institution_day ON ledger.settlements (institution_id, settlement_date);
CREATE INDEX settlements_person_year ON ledger.settlements (person_key, year);

COMMENT ON TABLE ledger.settlements IS
  'Every committed settlement (medsettle.v1.LedgerRecord), shipped from the Redis journal exactly once. Partitioned by month of settlement_date: ledger.settlements_YYYYMM, made by ledger.ensure_month_partition. record is the authority; the other columns are copied from it for SQL.';
COMMENT ON COLUMN ledger.settlements.settlement_id IS '<2-hex tag>-<12 hex: commit time, unix ms>-<16 hex random>';
COMMENT ON COLUMN ledger.settlements.settlement_date IS 'the accounting day: the discharge date of a stay, the service date otherwise (chooses policy and year; Reconcile''s day)';
COMMENT ON COLUMN ledger.settlements.settled_at IS 'when the gateway committed it (its clock)';
COMMENT ON COLUMN ledger.settlements.year IS 'the accumulators'' (insurance) year';
COMMENT ON COLUMN ledger.settlements.institution_id IS 'the settling hospital or pharmacy, from its client certificate';
COMMENT ON COLUMN ledger.settlements.request_id IS 'the institution''s idempotency key of the settle request';
COMMENT ON COLUMN ledger.settlements.person_key IS 'pseudonymous person key (HMAC-SHA256, 64 lowercase hex); never an ID number';
COMMENT ON COLUMN ledger.settlements.credential_kind IS 'ID_CARD, INSURANCE_CARD or EC_TOKEN (the credential itself is never stored)';
COMMENT ON COLUMN ledger.settlements.presenter_key IS 'person key of the family member who presented an e-insurance code; NULL when none';
COMMENT ON COLUMN ledger.settlements.certificate_fingerprint IS 'SHA-256 of the caller''s client certificate; NULL in development (no TLS)';
COMMENT ON COLUMN ledger.settlements.visit_type IS 'medsettle.v1.VisitType name, e.g. VISIT_TYPE_GENERAL_OUTPATIENT';
COMMENT ON COLUMN ledger.settlements.snapshot_version IS 'the enrollment snapshot version the settlement read';
COMMENT ON COLUMN ledger.settlements.policy_sha256 IS 'the policy file used: ledger.rule_files.sha256';
COMMENT ON COLUMN ledger.settlements.catalog_sha256 IS 'the catalog used: ledger.rule_files.sha256';
COMMENT ON COLUMN ledger.settlements.total_cents IS 'the bill, in fen (分); the *_cents columns are medsettle.v1.Amounts';
COMMENT ON COLUMN ledger.settlements.base_fund_cents IS '统筹基金 paid (national platform: hifp_pay)';
COMMENT ON COLUMN ledger.settlements.critical_illness_cents IS '大病保险 paid (hifmi_pay)';
COMMENT ON COLUMN ledger.settlements.supplementary_cents IS '惠民保 paid at the counter (oth_pay)';
COMMENT ON COLUMN ledger.settlements.patient_cents IS '个人负担 (psn_part_amt)';
COMMENT ON COLUMN ledger.settlements.delta IS 'the accumulator delta (record.response.accumulator_delta) as a serialized medsettle.v1.Accumulators, so year sums need not read whole records';
COMMENT ON COLUMN ledger.settlements.record IS 'the medsettle.v1.LedgerRecord, serialized protobuf, exactly the bytes the Redis journal held (uncompressed): the authority';
COMMENT ON COLUMN ledger.settlements.record_json IS 'the same record as proto3 JSON (field names as in ledger.proto; int64 as strings; default values omitted), for auditors'' SQL (json, not jsonb: parsing jsonb cost a quarter of the shipping throughput; cast with ::jsonb to index or compare)';
COMMENT ON COLUMN ledger.settlements.journal_tag IS 'the Redis hash tag whose journal held it: journal:{<tag>}';
COMMENT ON COLUMN ledger.settlements.journal_id IS 'its journal entry''s stream id, <ms>-<seq>';
COMMENT ON COLUMN ledger.settlements.shipped_at IS 'when the shipper committed it here';

-- ---- reversals --------------------------------------------------------------

CREATE TABLE ledger.reversals (
  settlement_id text NOT NULL
    CONSTRAINT reversals_settlement_id_format CHECK (
      length(settlement_id) = 32 AND settlement_id ~ '^[0-9a-f][0-9a-f]-[0-9a-f]*-[0-9a-f]*$' AND
      substr(settlement_id, 16, 1) = '-'),
  settlement_date date NOT NULL,
  reversed_at timestamptz NOT NULL,
  institution_id text NOT NULL CONSTRAINT reversals_institution_id_set CHECK (institution_id <> ''),
  request_id text NOT NULL CONSTRAINT reversals_request_id_set CHECK (request_id <> ''),
  settle_request_id text NOT NULL,
  reversal_id text,
  reason text NOT NULL,
  certificate_fingerprint text,
  person_key text NOT NULL CONSTRAINT reversals_person_key_format CHECK (length(person_key) = 64 AND person_key ~ '^[0-9a-f]*$'),
  year integer NOT NULL CONSTRAINT reversals_year_range CHECK (year BETWEEN 1900 AND 2199),
  total_cents bigint NOT NULL,
  out_of_scope_cents bigint NOT NULL,
  over_limit_cents bigint NOT NULL,
  pre_self_pay_cents bigint NOT NULL,
  in_scope_cents bigint NOT NULL,
  deductible_cents bigint NOT NULL,
  base_fund_cents bigint NOT NULL,
  critical_illness_cents bigint NOT NULL,
  supplementary_cents bigint NOT NULL,
  patient_cents bigint NOT NULL,
  delta bytea NOT NULL,
  record bytea NOT NULL,
  record_json json NOT NULL,
  journal_tag text NOT NULL CONSTRAINT reversals_journal_tag_format CHECK (length(journal_tag) = 2 AND journal_tag ~ '^[0-9a-f]*$'),
  journal_id text NOT NULL CONSTRAINT reversals_journal_id_format CHECK (journal_id ~ '^[0-9]+-[0-9]+$'),
  shipped_at timestamptz NOT NULL DEFAULT now(),
  -- A settlement is reversed at most once.
  PRIMARY KEY (settlement_id, settlement_date),
  CONSTRAINT reversals_amounts_not_negative CHECK (
    total_cents >= 0 AND out_of_scope_cents >= 0 AND over_limit_cents >= 0 AND
    pre_self_pay_cents >= 0 AND in_scope_cents >= 0 AND deductible_cents >= 0 AND
    base_fund_cents >= 0 AND critical_illness_cents >= 0 AND supplementary_cents >= 0 AND
    patient_cents >= 0),
  CONSTRAINT reversals_payers_add_up CHECK (
    base_fund_cents + critical_illness_cents + supplementary_cents + patient_cents = total_cents),
  CONSTRAINT reversals_tag_consistent CHECK (
    left(settlement_id, 2) = journal_tag AND left(person_key, 2) = journal_tag)
) PARTITION BY RANGE (settlement_date);
ALTER TABLE ledger.reversals ALTER COLUMN record SET COMPRESSION lz4;
ALTER TABLE ledger.reversals ALTER COLUMN record_json SET COMPRESSION lz4;
CREATE INDEX reversals_institution_day ON ledger.reversals (institution_id, settlement_date);
CREATE INDEX reversals_person_year ON ledger.reversals (person_key, year);

COMMENT ON TABLE ledger.reversals IS
  'Every reversal (medsettle.v1.LedgerReversal), partitioned like settlements by the REVERSED settlement''s settlement_date (ledger.reversals_YYYYMM), so a month''s settlements and their reversals are archived together.';
COMMENT ON COLUMN ledger.reversals.settlement_id IS 'the settlement reversed (ledger.settlements)';
COMMENT ON COLUMN ledger.reversals.settlement_date IS 'the reversed settlement''s accounting day (not the day of the reversal)';
COMMENT ON COLUMN ledger.reversals.reversed_at IS 'when the gateway committed the reversal';
COMMENT ON COLUMN ledger.reversals.request_id IS 'the reversal request''s own id';
COMMENT ON COLUMN ledger.reversals.settle_request_id IS 'the reversed settlement''s request id';
COMMENT ON COLUMN ledger.reversals.reversal_id IS 'the id returned to the caller (response.reversal_id); NULL if absent';
COMMENT ON COLUMN ledger.reversals.reason IS 'the caller''s free text';
COMMENT ON COLUMN ledger.reversals.total_cents IS 'what was given back, per payer (positive), the *_cents columns: the settlement''s amounts';
COMMENT ON COLUMN ledger.reversals.delta IS 'the accumulator delta subtracted from the year (LedgerReversal.delta, positive), a serialized medsettle.v1.Accumulators';
COMMENT ON COLUMN ledger.reversals.record IS 'the medsettle.v1.LedgerReversal, serialized protobuf as the Redis journal held it: the authority';
COMMENT ON COLUMN ledger.reversals.record_json IS 'the same as proto3 JSON';

-- ---- the shipper's cursors --------------------------------------------------

CREATE TABLE ledger.ship_cursors (
  tag text PRIMARY KEY CONSTRAINT ship_cursors_tag_format CHECK (length(tag) = 2 AND tag ~ '^[0-9a-f]*$'),
  last_ms bigint NOT NULL CONSTRAINT ship_cursors_last_ms CHECK (last_ms >= 0),
  last_seq bigint NOT NULL CONSTRAINT ship_cursors_last_seq CHECK (last_seq >= 0),
  entries_shipped bigint NOT NULL DEFAULT 0,
  updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE ledger.ship_cursors IS
  'Per Redis hash tag: the journal stream id <last_ms>-<last_seq> shipped up to (inclusive). Moved in the same transaction as the rows it covers, so a journal entry at or before it is in the ledger.';
COMMENT ON COLUMN ledger.ship_cursors.entries_shipped IS 'journal entries (settlements and reversals) shipped through this tag, ever';

-- ---- monthly partitions -----------------------------------------------------

-- Makes ledger.<parent>_YYYYMM for the month of `day` unless it exists,
-- and returns its name. Called by the shipper (in a short transaction of
-- its own, before a batch that needs it) and by operators to make months
-- ahead. Serialized by an advisory lock (namespace 'MSLD', key 3), so two
-- callers never race. Refuses a table of that name that is not attached
-- (an archived month detached but kept): attach it back, or rename it.
CREATE FUNCTION ledger.ensure_month_partition(parent text, day date) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  first_day date := date_trunc('month', day)::date;
  part text := parent || '_' || to_char(day, 'YYYYMM');
  existing regclass;
BEGIN
  IF parent NOT IN ('settlements', 'reversals') THEN
    RAISE EXCEPTION 'ensure_month_partition: no partitioned table ledger.%', parent;
  END IF;
  PERFORM pg_advisory_xact_lock(1297304644, 3);
  existing := to_regclass(format('ledger.%I', part));
  IF existing IS NOT NULL THEN
    IF NOT EXISTS (SELECT 1 FROM pg_inherits
                   WHERE inhrelid = existing AND inhparent = format('ledger.%I', parent)::regclass) THEN
      RAISE EXCEPTION 'ledger.% exists but is not a partition of ledger.% (detached for archiving?): attach it again or rename it', part, parent;
    END IF;
    RETURN part;
  END IF;
  EXECUTE format('CREATE TABLE ledger.%I PARTITION OF ledger.%I FOR VALUES FROM (%L) TO (%L)',
                 part, parent, first_day, (first_day + interval '1 month')::date);
  EXECUTE format('COMMENT ON TABLE ledger.%I IS %L', part,
                 format('ledger.%s of %s (settlement_date in [%s, %s))', parent,
                        to_char(day, 'YYYY-MM'), first_day, (first_day + interval '1 month')::date));
  RETURN part;
END
$$;
COMMENT ON FUNCTION ledger.ensure_month_partition(text, date) IS
  'Makes ledger.settlements_YYYYMM / ledger.reversals_YYYYMM for the month of day if missing; returns its name';
