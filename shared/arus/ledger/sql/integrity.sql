-- The schema's integrity on the write path, as statement-level checks (migration 0007): what
-- the per-row foreign keys, the multi-column CHECKs and the per-entry balance trigger refused,
-- judged once per statement over its transition table (`new_rows`) instead of once per row.
-- Single-column rules are domains (arus_currency, arus_amount, ...), whose checks PostgreSQL
-- keeps compiled in its type cache; a table's CHECKs are rebuilt from text on every executor
-- start. A check here takes no lock on the row it finds: ledgers, accounts and balances can
-- therefore never be deleted, truncated or given another key (arus_reject_removal), and the
-- journal tables are append-only (arus_reject_change), so a row found stays found.
--
-- Every lookup is a scalar subquery on a unique index, evaluated per new row: the plan of a
-- trigger's statement is made once per session, on its first transition table, and a hash join
-- planned for a batch of a thousand rows would then scan the whole table for every entry.

-- Refuses a row as the constraint it stands for would have: the same SQLSTATE (23503 for a
-- foreign key, 23514 for a check) and the constraint's name, which the gateway maps by name
-- (arus.errors: balances_non_negative is insufficient_funds).
CREATE OR REPLACE FUNCTION arus_refuse_row(p_table text, p_constraint text, p_row text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF p_constraint LIKE '%\_fkey' THEN
        RAISE EXCEPTION 'insert or update on table "%" violates foreign key constraint "%"',
            p_table, p_constraint
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = p_constraint,
                  TABLE = p_table, SCHEMA = 'public',
                  DETAIL = format('Failing row contains %s: the row it names does not exist.',
                                  p_row);
    END IF;
    RAISE EXCEPTION 'new row for relation "%" violates check constraint "%"', p_table, p_constraint
        USING ERRCODE = 'check_violation', CONSTRAINT = p_constraint, TABLE = p_table,
              SCHEMA = 'public', DETAIL = format('Failing row contains %s.', p_row);
END $$;

-- entries, AFTER INSERT: its ledger, the entry it reverses or posts (same ledger), and the
-- former row checks, each the old CHECK's expression refused when it is false.
CREATE OR REPLACE FUNCTION arus_check_new_entries() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_violated text;
    v_row text;
BEGIN
    SELECT c.violated, c.row_text INTO v_violated, v_row
    FROM (
        SELECT CASE
                   WHEN (SELECT 1 FROM ledgers l WHERE l.id = n.ledger_id) IS NULL
                       THEN 'entries_ledger_id_fkey'
                   WHEN n.reverses IS NOT NULL AND (
                       SELECT 1 FROM entries e
                       WHERE e.ledger_id = n.ledger_id AND e.id = n.reverses) IS NULL
                       THEN 'entries_reverses_fkey'
                   WHEN n.posts IS NOT NULL AND (
                       SELECT 1 FROM entries e
                       WHERE e.ledger_id = n.ledger_id AND e.id = n.posts) IS NULL
                       THEN 'entries_posts_fkey'
                   WHEN (n.reverses IS DISTINCT FROM n.id) IS FALSE
                       THEN 'entries_not_self_reversal'
                   WHEN (n.pending OR n.expires_at IS NULL) IS FALSE
                       THEN 'entries_expiry_only_pending'
                   WHEN (n.posts IS NULL OR NOT n.pending) IS FALSE
                       THEN 'entries_posts_only_posted'
               END AS violated,
               n::text AS row_text
        FROM new_rows n
    ) c
    WHERE c.violated IS NOT NULL
    LIMIT 1;
    IF v_violated IS NOT NULL THEN
        PERFORM arus_refuse_row(TG_TABLE_NAME, v_violated, v_row);
    END IF;
    RETURN NULL;
END $$;

-- postings and pending_postings, AFTER INSERT: the entry and the account, both of the row's
-- ledger (the composite foreign keys' cross-ledger guard), then every entry the statement
-- wrote lines for has, counting its lines in both tables, 2..100 of them balancing per
-- currency. Lines are append-only, so an entry balanced after the statement that wrote its
-- lines stays balanced; arus_check_entry_has_lines refuses at commit an entry with no lines.
CREATE OR REPLACE FUNCTION arus_check_new_lines() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_violated text;
    v_row text;
    v_entry uuid;
    v_lines bigint;
    v_unbalanced text;
BEGIN
    SELECT c.violated, c.row_text INTO v_violated, v_row
    FROM (
        SELECT CASE
                   WHEN (SELECT 1 FROM entries e
                         WHERE e.ledger_id = n.ledger_id AND e.id = n.entry_id) IS NULL
                       THEN TG_TABLE_NAME || '_ledger_id_entry_id_fkey'
                   WHEN (SELECT 1 FROM accounts a
                         WHERE a.ledger_id = n.ledger_id AND a.id = n.account_id) IS NULL
                       THEN TG_TABLE_NAME || '_ledger_id_account_id_fkey'
               END AS violated,
               n::text AS row_text
        FROM new_rows n
    ) c
    WHERE c.violated IS NOT NULL
    LIMIT 1;
    IF v_violated IS NOT NULL THEN
        PERFORM arus_refuse_row(TG_TABLE_NAME, v_violated, v_row);
    END IF;

    SELECT t.entry_id, s.lines, s.unbalanced INTO v_entry, v_lines, v_unbalanced
    FROM (SELECT DISTINCT entry_id FROM new_rows) t
    CROSS JOIN LATERAL (
        SELECT coalesce(sum(c.n), 0) AS lines,
               string_agg(c.currency, ', ' ORDER BY c.currency) FILTER (WHERE c.net <> 0)
                   AS unbalanced
        FROM (
            SELECT l.currency, count(*) AS n,
                   sum(CASE l.direction WHEN 'debit' THEN l.amount::numeric
                                        ELSE -l.amount::numeric END) AS net
            FROM (SELECT p.currency, p.direction, p.amount FROM postings p
                  WHERE p.entry_id = t.entry_id
                  UNION ALL
                  SELECT q.currency, q.direction, q.amount FROM pending_postings q
                  WHERE q.entry_id = t.entry_id) l
            GROUP BY l.currency
        ) c
    ) s
    WHERE s.lines NOT BETWEEN 2 AND 100 OR s.unbalanced IS NOT NULL
    LIMIT 1;
    IF v_lines NOT BETWEEN 2 AND 100 THEN
        RAISE EXCEPTION 'entry % has % postings; 2 to 100 are required', v_entry, v_lines
            USING ERRCODE = 'P0001', HINT = 'unbalanced_entry';
    END IF;
    IF v_unbalanced IS NOT NULL THEN
        RAISE EXCEPTION 'entry % does not balance in %', v_entry, v_unbalanced
            USING ERRCODE = 'P0001', HINT = 'unbalanced_entry';
    END IF;
    RETURN NULL;
END $$;

-- entries, deferred to commit, per entry: it has lines (pending lines, for a pending entry).
-- The statement that wrote them judged them (arus_check_new_lines); this only proves that such
-- a statement ran, with one index probe: the engine writes an entry before its lines.
CREATE OR REPLACE FUNCTION arus_check_entry_has_lines() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM postings WHERE entry_id = NEW.id)
       AND NOT EXISTS (SELECT 1 FROM pending_postings WHERE entry_id = NEW.id) THEN
        RAISE EXCEPTION 'entry % has 0 postings; 2 to 100 are required', NEW.id
            USING ERRCODE = 'P0001', HINT = 'unbalanced_entry';
    END IF;
    RETURN NULL;
END $$;

-- holds, AFTER INSERT: the pending line it reserves.
CREATE OR REPLACE FUNCTION arus_check_new_holds() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_row text;
BEGIN
    SELECT n::text INTO v_row
    FROM new_rows n
    WHERE (SELECT 1 FROM pending_postings p
           WHERE p.entry_id = n.entry_id AND p.position = n.position) IS NULL
    LIMIT 1;
    IF v_row IS NOT NULL THEN
        PERFORM arus_refuse_row(TG_TABLE_NAME, 'holds_entry_id_position_fkey', v_row);
    END IF;
    RETURN NULL;
END $$;

-- pending_outcomes, AFTER INSERT: the entry it resolves, of the row's ledger.
CREATE OR REPLACE FUNCTION arus_check_new_outcomes() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_row text;
BEGIN
    SELECT n::text INTO v_row
    FROM new_rows n
    WHERE (SELECT 1 FROM entries e WHERE e.ledger_id = n.ledger_id AND e.id = n.entry_id) IS NULL
    LIMIT 1;
    IF v_row IS NOT NULL THEN
        PERFORM arus_refuse_row(TG_TABLE_NAME, 'pending_outcomes_ledger_id_entry_id_fkey', v_row);
    END IF;
    RETURN NULL;
END $$;

-- idempotency_keys and outbox_events, AFTER INSERT: the row's ledger.
CREATE OR REPLACE FUNCTION arus_check_new_ledger_rows() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_row text;
BEGIN
    SELECT n::text INTO v_row
    FROM new_rows n
    WHERE (SELECT 1 FROM ledgers l WHERE l.id = n.ledger_id) IS NULL
    LIMIT 1;
    IF v_row IS NOT NULL THEN
        PERFORM arus_refuse_row(TG_TABLE_NAME, TG_TABLE_NAME || '_ledger_id_fkey', v_row);
    END IF;
    RETURN NULL;
END $$;

-- balances, AFTER INSERT and AFTER UPDATE: the account, of the row's ledger (on insert: an
-- update cannot change either key), and no account that may not go negative is below zero.
CREATE OR REPLACE FUNCTION arus_check_balances() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_violated text;
    v_row text;
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT c.violated, c.row_text INTO v_violated, v_row
        FROM (
            SELECT CASE
                       WHEN (SELECT 1 FROM accounts a
                             WHERE a.ledger_id = n.ledger_id AND a.id = n.account_id) IS NULL
                           THEN 'balances_ledger_id_account_id_fkey'
                       WHEN (n.allow_negative OR n.balance >= 0) IS FALSE
                           THEN 'balances_non_negative'
                   END AS violated,
                   n::text AS row_text
            FROM new_rows n
        ) c
        WHERE c.violated IS NOT NULL
        LIMIT 1;
    ELSE
        SELECT 'balances_non_negative', n::text INTO v_violated, v_row
        FROM new_rows n
        WHERE (n.allow_negative OR n.balance >= 0) IS FALSE
        LIMIT 1;
    END IF;
    IF v_violated IS NOT NULL THEN
        PERFORM arus_refuse_row(TG_TABLE_NAME, v_violated, v_row);
    END IF;
    RETURN NULL;
END $$;

-- ledgers, accounts and balances, BEFORE DELETE or TRUNCATE, and BEFORE an UPDATE naming a key
-- column (of those and of the rows that name a ledger or a pending line): the checks above
-- found the rows they reference without locking them, which holds only if those rows stay.
CREATE OR REPLACE FUNCTION arus_reject_removal() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        RAISE EXCEPTION 'UPDATE of the keys of % is refused: a row keeps its ledger and its id',
            TG_TABLE_NAME
            USING ERRCODE = 'P0001', HINT = 'append_only';
    END IF;
    RAISE EXCEPTION '% on % is refused: ledgers, accounts and their balances are never removed',
        TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'P0001', HINT = 'append_only';
END $$;
