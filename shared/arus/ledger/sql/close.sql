-- The daily close (SPEC §3.3), computed here from the journal: the caller names a ledger and a
-- day and passes nothing it could forge. Run by the close's role (migration 0006).

-- Each account's balance at the end of p_day (UTC): the balance_after of its last posting
-- booked before midnight, beside the sum of those postings, for every account that existed.
-- One account's line of a close's snapshot. A type, not a table: created here when missing so
-- that this file applies to a database of any age, like the functions it defines.
DO $$ BEGIN
    IF to_regtype('public.arus_close_line') IS NULL THEN
        CREATE TYPE public.arus_close_line AS (
            account_id uuid, code text, currency text, normal_side text, balance bigint,
            postings_sum numeric);
    END IF;
END $$;

CREATE OR REPLACE FUNCTION arus_close_snapshot(p_ledger uuid, p_cutoff timestamptz)
RETURNS SETOF arus_close_line LANGUAGE sql STABLE AS $$
    SELECT a.id, a.code, a.currency, b.normal_side,
           coalesce((SELECT p.balance_after FROM postings p
                     WHERE p.account_id = a.id AND p.created_at < p_cutoff
                     ORDER BY p.created_at DESC, p.id DESC LIMIT 1), 0),
           coalesce((SELECT sum(CASE WHEN p.direction = b.normal_side
                                     THEN p.amount::numeric ELSE -p.amount::numeric END)
                     FROM postings p
                     WHERE p.account_id = a.id AND p.created_at < p_cutoff), 0)
    FROM accounts a JOIN balances b ON b.account_id = a.id
    WHERE a.ledger_id = p_ledger AND a.created_at < p_cutoff
$$;

-- Accounts whose materialized balance differs from the sum of their postings, now.
CREATE OR REPLACE FUNCTION arus_current_drift(p_ledger uuid) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'account_id', a.id, 'account_code', a.code, 'currency', a.currency,
               'materialized_balance', b.balance, 'postings_balance', s.total)
               ORDER BY a.currency, a.code), '[]')
    FROM accounts a
    JOIN balances b ON b.account_id = a.id
    CROSS JOIN LATERAL (
        SELECT coalesce(sum(CASE WHEN p.direction = b.normal_side
                                 THEN p.amount::numeric ELSE -p.amount::numeric END), 0) AS total
        FROM postings p WHERE p.ledger_id = p_ledger AND p.account_id = a.id
    ) s
    WHERE a.ledger_id = p_ledger AND s.total <> b.balance
$$;

-- Closes (p_ledger, p_day): refuses a day before the ledger existed and a day not yet over.
-- Holds the ledger's close lock exclusively, so no back-dated entry is judged against a close
-- not yet visible and concurrent closes queue; a closed day returns its stored report. A clean
-- close stores its report, snapshot and `ledger.closed` event; one with drift or imbalance
-- stores nothing and returns its report.
--
-- No entry stamped before midnight is missed, however long its transaction stays open: the
-- engine stamps an entry's created_at while it holds the ledger row (step 7 of
-- arus_write_entries) and keeps it to commit, so once the close has waited for the row's
-- current holder, every entry stamped before midnight has committed or rolled back, and every
-- later holder stamps after now. The wait takes the row in a subtransaction that ends at once:
-- the close never holds the ledger's writers back.
CREATE OR REPLACE FUNCTION arus_close_day(p_ledger uuid, p_day date) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    v_cutoff constant timestamptz := (p_day + 1)::timestamp AT TIME ZONE 'UTC';
    v_created date;
    v_lines arus_close_line[];
    v_report jsonb;
BEGIN
    PERFORM arus_require_read_committed();
    IF p_day IS NULL OR NOT isfinite(p_day) THEN
        RAISE EXCEPTION 'a close needs a day' USING ERRCODE = 'P0001', HINT = 'validation_error';
    END IF;
    SELECT (created_at AT TIME ZONE 'UTC')::date INTO v_created FROM ledgers WHERE id = p_ledger;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no ledger %', p_ledger USING ERRCODE = 'P0001', HINT = 'not_found';
    END IF;
    IF p_day < v_created THEN
        RAISE EXCEPTION '% is before the ledger existed (created %)', p_day, v_created
            USING ERRCODE = 'P0001', HINT = 'validation_error';
    END IF;
    IF clock_timestamp() < v_cutoff THEN
        RAISE EXCEPTION '% can be closed from %', p_day, arus_timestamp(v_cutoff)
            USING ERRCODE = 'P0001', HINT = 'validation_error';
    END IF;
    PERFORM arus_close_lock(p_ledger, true);
    BEGIN
        PERFORM 1 FROM ledgers WHERE id = p_ledger FOR SHARE;
        RAISE EXCEPTION 'waited' USING ERRCODE = 'AR001';
    EXCEPTION WHEN SQLSTATE 'AR001' THEN
        NULL;  -- the subtransaction ended with its row lock: the wait was the point
    END;
    SELECT report INTO v_report FROM daily_closes WHERE ledger_id = p_ledger AND close_date = p_day;
    IF FOUND THEN
        RETURN v_report;
    END IF;

    -- One read of the journal: the report and the stored snapshot are the same rows.
    v_lines := ARRAY(SELECT s FROM arus_close_snapshot(p_ledger, v_cutoff) s);
    WITH snapshot AS (
        SELECT s.*, CASE s.normal_side WHEN 'debit' THEN s.balance ELSE -s.balance END AS signed
        FROM unnest(v_lines) s
    ), totals AS (
        SELECT currency, sum(greatest(signed, 0)) AS debit, sum(greatest(-signed, 0)) AS credit
        FROM snapshot GROUP BY currency
    ), drift AS (
        SELECT coalesce(jsonb_agg(jsonb_build_object(
                   'account_id', account_id, 'account_code', code,
                   'snapshot_balance', balance, 'postings_balance', postings_sum)
                   ORDER BY code), '[]') AS found
        FROM snapshot WHERE postings_sum <> balance
    )
    SELECT jsonb_build_object(
               'ledger_id', p_ledger, 'date', p_day,
               'accounts', (SELECT count(*) FROM snapshot),
               'last_ledger_seq', (SELECT coalesce(max(ledger_seq), 0) FROM entries
                                   WHERE ledger_id = p_ledger AND created_at < v_cutoff),
               'totals', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                                     'currency', currency, 'debit', debit, 'credit', credit)
                                     ORDER BY currency), '[]') FROM totals),
               'balanced', (SELECT coalesce(bool_and(debit = credit), true) FROM totals),
               'drift', drift.found || arus_current_drift(p_ledger))
    INTO v_report FROM drift;
    v_report := v_report || jsonb_build_object(
        'ok', (v_report ->> 'balanced')::boolean AND v_report -> 'drift' = '[]'::jsonb);
    IF NOT (v_report ->> 'ok')::boolean THEN
        RETURN v_report;
    END IF;

    INSERT INTO daily_closes (ledger_id, close_date, report) VALUES (p_ledger, p_day, v_report);
    INSERT INTO balance_snapshots (ledger_id, close_date, account_id, currency, balance)
    SELECT p_ledger, p_day, s.account_id, s.currency, s.balance
    FROM unnest(v_lines) s;
    PERFORM arus_enqueue_event(p_ledger, 'ledger.closed', NULL, clock_timestamp(),
                               v_report::json);
    RETURN v_report;
END $$;
