-- The judgement: every rule an entry must pass, written once, shared by single entries,
-- batches, reversals and the posting of pending entries. It reads no lock and writes nothing;
-- the engine (posting.sql) locks the balance rows before it judges and applies what it allows.

-- The row types the steps pass one another (no arrays kept aligned by index):
--   arus_item     one entry of a call, as requested, with its lines as the caller sent them;
--   arus_line     one of its lines, resolved to an account of the ledger (account_id NULL when
--                 it names none; `named` is the id or code it gave, for the error message;
--                 expected_version the account version it requires, if any);
--   arus_refusal  the first rule an item breaks, as the API error it answers.
-- A type's shape changes only in a migration that drops it first; these create it once.
DO $$
BEGIN
    IF to_regtype('public.arus_item') IS NULL THEN
        CREATE TYPE public.arus_item AS (
            item int, key text, fingerprint text, description text, effective_date date,
            metadata jsonb, reverses uuid, posts uuid, pending boolean, expires_at timestamptz,
            lines jsonb);
    END IF;
    IF to_regtype('public.arus_line') IS NULL THEN
        CREATE TYPE public.arus_line AS (
            item int, pos int, account_id uuid, named text, code text, currency text,
            want text, direction text, amount bigint, pending boolean, release boolean,
            expected_version bigint);
    END IF;
    IF to_regtype('public.arus_refusal') IS NULL THEN
        CREATE TYPE public.arus_refusal AS (
            item int, code text, message text, first_open_date date);
    END IF;
END $$;

-- An item's lines are an array of 2..100 (the commands check it first; this is the engine's
-- own bound, for any caller).
CREATE OR REPLACE FUNCTION arus_lines_ok(p_lines jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN jsonb_typeof(p_lines) = 'array'
                THEN jsonb_array_length(p_lines) BETWEEN 2 AND 100 ELSE false END
$$;

-- What each resolved line moves on its account's row, as the calling statement sees the row:
--   delta         the posted balance (a pending line moves none);
--   lower_delta   the account's active holds on the side that lowers it (a pending line
--                 reserves there, a line that posts a pending entry releases what it held);
--   hold_delta    the account's pending total on the line's own side;
--   posted        what the line adds to its account's version (1 if posted, 0 if pending).
-- lowering_holds and side_holds are those totals as the row holds them now, version the
-- account's version (its count of posted postings).
CREATE OR REPLACE FUNCTION arus_line_moves(p_lines arus_line[])
RETURNS TABLE (
    item int, pos int, account_id uuid, code text, currency text, want text, direction text,
    amount bigint, pending boolean, normal_side text, balance bigint, allow_negative boolean,
    lowering_holds bigint, side_holds bigint, delta bigint, lower_delta bigint,
    hold_delta bigint, expected_version bigint, version bigint, posted int
) LANGUAGE sql STABLE AS $$
    SELECT l.item, l.pos, l.account_id, l.code, l.currency, l.want, l.direction, l.amount,
           l.pending, b.normal_side, b.balance, b.allow_negative,
           CASE b.normal_side WHEN 'debit' THEN b.pending_credits ELSE b.pending_debits END,
           CASE l.direction WHEN 'debit' THEN b.pending_debits ELSE b.pending_credits END,
           CASE WHEN l.pending THEN 0
                WHEN l.direction = b.normal_side THEN l.amount ELSE -l.amount END,
           CASE WHEN l.direction = b.normal_side THEN 0
                WHEN l.pending THEN l.amount WHEN l.release THEN -l.amount ELSE 0 END,
           CASE WHEN l.pending THEN l.amount WHEN l.release THEN -l.amount ELSE 0 END,
           l.expected_version, b.posting_count, CASE WHEN l.pending THEN 0 ELSE 1 END
    FROM unnest(p_lines) AS l
    JOIN balances b ON b.account_id = l.account_id
$$;

-- Judges items p_from..p_to of a call, each on the balances the items before it in that range
-- would leave if they were written: the first refusal returned is exact (every item before
-- it passed), a later one only as exact as that assumption. Each item's first refusal, by the
-- rules' order:
--   1 period_closed       dated on or before the ledger's last close (p_last_close);
--   2 validation_error    a hold that expires before it is written (p_at);
--   3 validation_error    a line naming no account of the ledger, or
--     currency_mismatch   a line asking a currency its account is not in (whichever is first);
--   4 version_conflict    a line whose expected_version is not its account's version before
--                         the item (first line);
--   5 unbalanced_entry    debits and credits differ in a currency;
--   6 validation_error    a currency's total beyond the int64 range;
--   7 validation_error    a balance or pending total leaving the int64 range (first line);
--   8 insufficient_funds  an account that may not go negative whose available balance (balance
--                         less its active holds on the lowering side) would (first account).
-- Holds past their expires_at are not active, whether or not the sweep has deleted them; the
-- holds of entries this call posts are released by it, not expired.
CREATE OR REPLACE FUNCTION arus_judge(
    p_items arus_item[], p_lines arus_line[], p_from int, p_to int, p_last_close date,
    p_at timestamptz
) RETURNS SETOF arus_refusal LANGUAGE sql STABLE AS $$
    WITH item AS (
        SELECT * FROM unnest(p_items) AS i WHERE i.item BETWEEN p_from AND p_to
    ), line AS (
        SELECT * FROM unnest(p_lines) AS l WHERE l.item BETWEEN p_from AND p_to
    ), moves AS (
        SELECT * FROM arus_line_moves(p_lines) AS m WHERE m.item BETWEEN p_from AND p_to
    ), running AS (
        SELECT m.item, m.pos, m.account_id, m.code, m.allow_negative,
               m.balance + sum(m.delta) OVER account_order AS after,
               m.lowering_holds - coalesce(x.expired, 0) + sum(m.lower_delta) OVER account_order
                   AS lowering_after,
               m.side_holds + sum(m.hold_delta)
                   OVER (PARTITION BY m.account_id, m.direction ORDER BY m.item, m.pos)
                   AS side_after,
               row_number() OVER (PARTITION BY m.account_id, m.item ORDER BY m.pos DESC) = 1
                   AS last_of_item
        FROM moves m
        LEFT JOIN LATERAL (
            SELECT sum(h.amount) AS expired
            FROM holds h
            WHERE h.account_id = m.account_id AND h.direction <> m.normal_side
              AND h.expires_at <= p_at
              AND h.entry_id NOT IN (SELECT i.posts FROM item i WHERE i.posts IS NOT NULL)
        ) x ON true
        WINDOW account_order AS (PARTITION BY m.account_id ORDER BY m.item, m.pos)
    ), versioned AS (
        SELECT m.item, m.pos, m.code, m.expected_version,
               m.version + coalesce(sum(m.posted) OVER (
                   PARTITION BY m.account_id ORDER BY m.item
                   RANGE BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS before_item
        FROM moves m
    ), totals AS (
        SELECT m.item, m.currency,
               coalesce(sum(m.amount) FILTER (WHERE m.direction = 'debit'), 0) AS debits,
               coalesce(sum(m.amount) FILTER (WHERE m.direction = 'credit'), 0) AS credits
        FROM moves m GROUP BY m.item, m.currency
    ), refusal AS (
        SELECT i.item, 1 AS rule, 0 AS pos, NULL::uuid AS account_id, 'period_closed' AS code,
               format('effective_date %s is in a closed period: the ledger is closed through %s',
                      to_char(i.effective_date, 'YYYY-MM-DD'),
                      to_char(p_last_close, 'YYYY-MM-DD')) AS message,
               p_last_close + 1 AS first_open_date
        FROM item i WHERE i.effective_date <= p_last_close
        UNION ALL
        SELECT i.item, 2, 0, NULL, 'validation_error' AS code,
               'expires_at must be in the future', NULL
        FROM item i WHERE i.expires_at <= p_at
        UNION ALL
        SELECT l.item, 3, l.pos, NULL, 'validation_error' AS code,
               format('postings[%s].account: no such account %s', l.pos - 1, l.named), NULL
        FROM line l WHERE l.account_id IS NULL
        UNION ALL
        SELECT l.item, 3, l.pos, NULL, 'currency_mismatch' AS code,
               format('postings[%s].currency is %s but account %s is in %s', l.pos - 1, l.want,
                      l.code, l.currency), NULL
        FROM line l WHERE l.want <> l.currency
        UNION ALL
        SELECT v.item, 4, v.pos, NULL, 'version_conflict' AS code,
               format('account %s is at version %s, not the expected %s', v.code,
                      v.before_item, v.expected_version), NULL
        FROM versioned v WHERE v.expected_version <> v.before_item
        UNION ALL
        SELECT t.item, 5, 0, NULL, 'unbalanced_entry' AS code,
               'debits and credits differ: ' || string_agg(
                   format('%s (debits %s, credits %s)', t.currency, t.debits, t.credits), '; '
                   ORDER BY t.currency), NULL
        FROM totals t WHERE t.debits <> t.credits GROUP BY t.item
        UNION ALL
        SELECT t.item, 6, 0, NULL, 'validation_error' AS code,
               format('the entry''s total in %s exceeds the int64 range',
                      string_agg(t.currency, ', ' ORDER BY t.currency)), NULL
        FROM totals t WHERE t.debits > 18446744073709551614 GROUP BY t.item
        UNION ALL
        SELECT r.item, 7, r.pos, NULL, 'validation_error' AS code,
               format('the balance of account %s would leave the int64 range', r.code), NULL
        FROM running r
        WHERE r.after NOT BETWEEN -9223372036854775808 AND 9223372036854775807
           OR r.side_after > 9223372036854775807
        UNION ALL
        SELECT r.item, 8, 0, r.account_id, 'insufficient_funds' AS code,
               format('account %s has insufficient funds: the entry would take its available '
                      'balance to %s', r.code, r.after - r.lowering_after), NULL
        FROM running r
        WHERE r.last_of_item AND NOT r.allow_negative AND r.after - r.lowering_after < 0
    )
    SELECT DISTINCT ON (r.item) r.item, r.code, r.message, r.first_open_date
    FROM refusal r
    ORDER BY r.item, r.rule, r.pos, r.account_id
$$;
