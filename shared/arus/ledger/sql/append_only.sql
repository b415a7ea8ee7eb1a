-- The journal is append-only, and every entry balances: two database-level guards that hold
-- whatever code writes to the tables.

CREATE OR REPLACE FUNCTION arus_reject_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% on % is refused: the journal is append-only, post a reversal instead',
        TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'P0001', HINT = 'append_only';
END $$;

-- At commit, every new entry must have 2..100 postings (pending postings, for a pending
-- entry) balancing per currency: a second, independent check behind the engine
-- (django-hordak's deferred constraint trigger). Migration 0001's trigger `entries_balanced`
-- ran it per entry until migration 0007 replaced it by the statement-level checks of
-- integrity.sql; it stays defined because 0001 creates that trigger on a fresh database.
CREATE OR REPLACE FUNCTION arus_check_entry_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_count bigint;
    v_unbalanced text;
BEGIN
    SELECT coalesce(sum(n), 0), string_agg(currency, ', ') FILTER (WHERE net <> 0)
    INTO v_count, v_unbalanced
    FROM (
        SELECT currency, count(*) AS n,
               sum(CASE direction WHEN 'debit' THEN amount::numeric ELSE -amount::numeric END)
                   AS net
        FROM (SELECT currency, direction, amount FROM postings WHERE entry_id = NEW.id
              UNION ALL
              SELECT currency, direction, amount FROM pending_postings
              WHERE entry_id = NEW.id) lines
        GROUP BY currency
    ) per_currency;
    IF v_count < 2 OR v_count > 100 THEN
        RAISE EXCEPTION 'entry % has % postings; 2 to 100 are required', NEW.id, v_count
            USING ERRCODE = 'P0001', HINT = 'unbalanced_entry';
    END IF;
    IF v_unbalanced IS NOT NULL THEN
        RAISE EXCEPTION 'entry % does not balance in %', NEW.id, v_unbalanced
            USING ERRCODE = 'P0001', HINT = 'unbalanced_entry';
    END IF;
    RETURN NULL;
END $$;
